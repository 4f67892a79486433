# The pages' JavaScript and CSS, from the npm registry (the same pinned set `make setup` fetches).
FROM node:20-bookworm-slim AS static
WORKDIR /src
COPY scripts/fetch-static-assets scripts/
RUN bash scripts/fetch-static-assets

FROM python:3.11-slim
# `connectivity serve`, started as root, serves as this unprivileged user.
RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin connectivity
WORKDIR /app
COPY . .
COPY --from=static /src/maps/static/vendor maps/static/vendor
RUN pip install --no-cache-dir -e .
ENV CONNECTIVITY_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["connectivity", "serve"]

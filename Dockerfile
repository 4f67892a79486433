FROM python:3.11-slim
# `connectivity serve`, started as root, serves as this unprivileged user.
RUN useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin connectivity
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e .
ENV CONNECTIVITY_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["connectivity", "serve"]

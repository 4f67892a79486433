FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e .
ENV CONNECTIVITY_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["connectivity", "serve"]

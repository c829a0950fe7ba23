FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY models ./models
COPY scripts ./scripts
RUN pip install --no-cache-dir .
ENV SHOPSTREAM_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["faust", "-A", "stream.app", "worker", "-l", "info"]

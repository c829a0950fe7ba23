FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY stream ./stream
COPY models ./models
COPY backtest ./backtest
COPY shop ./shop
COPY bench ./bench
COPY devstack ./devstack
COPY scripts ./scripts
# gcc builds the compiled ranking (models/cooccurrence_rank.pyx), then goes.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV SHOPSTREAM_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["faust", "-A", "stream.app", "worker", "-l", "info"]

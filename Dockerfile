# ddi-curate: one image for web, workers and beat (the command differs per service).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# CPU wheels of torch first (the default index would pull CUDA builds).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml constraints.txt README.md ./
COPY ddi_site ./ddi_site
COPY annotations ./annotations
COPY modeling ./modeling
RUN pip install -c constraints.txt .
COPY . .
RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "ddi_site.wsgi", "-b", "0.0.0.0:8000", "-w", "3"]

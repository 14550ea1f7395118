# freqforensics in a container: CPU by default, CUDA with one build argument.
#
#   docker build -t freqforensics .                                                   # CPU (the default target)
#   docker build --target cuda --build-arg JAX_CUDA=cuda12 -t freqforensics:cuda12 .  # GPUs (or cuda13)
#   docker run --rm -v "$PWD/runs:/runs" -v "$HOME/.cache/freqforensics:/data" freqforensics \
#       --config=configs/demo.py --workdir=/runs/demo
#
# launch/docker.sh wraps these (build, shell, test, demo, run). Every command below is one the README
# runs outside Docker (tests/repository/test_docker.py checks), so the test suite covers it. Multi-stage: pip and
# its caches stay in the build stages; the final images hold Python, the virtual environment and the
# source, and run as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- Build: the pinned dependencies and the package in a virtual environment under /app.
FROM ${PYTHON_IMAGE} AS build-cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt ./
RUN python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
COPY . .
RUN . .venv/bin/activate && pip install --no-deps -e .

# --- GPUs: the CUDA plugin of the pinned JAX version; CUDA libraries come as pip wheels, the host
# needs only the NVIDIA driver and container toolkit (docker run --gpus all).
FROM build-cpu AS build-cuda
ARG JAX_CUDA=cuda12
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN case "${JAX_CUDA}" in cuda12|cuda13) ;; *) echo "JAX_CUDA must be cuda12 or cuda13, not ${JAX_CUDA}" >&2; exit 1;; esac \
    && . .venv/bin/activate && pip install "jax[${JAX_CUDA}]==$(sed -n 's/^jax==//p' requirements.txt)"

# --- Runtime base: no compilers, no pip caches; one unprivileged user; work dirs and data as volumes.
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FREQFORENSICS_DATA=/data \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --create-home --uid 1000 --shell /bin/bash ff \
    && mkdir -p /runs /data \
    && chown ff:ff /runs /data
WORKDIR /app
VOLUME ["/runs", "/data"]
USER 1000:1000
ENTRYPOINT ["python", "-m", "freqforensics.main"]
CMD ["--config=configs/demo.py", "--workdir=/runs/demo"]

FROM runtime AS cuda
COPY --from=build-cuda /app /app

# The last stage is what a plain `docker build .` makes: CPU.
FROM runtime AS cpu
COPY --from=build-cpu /app /app

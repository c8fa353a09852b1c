#!/usr/bin/env bash
# PyTorch's speed in its faster configuration on this machine: torch_ref.py
# as installed (glibc malloc) and with tcmalloc preloaded, which PyTorch's
# CPU performance guide recommends (apt-get install libtcmalloc-minimal4).
# Prints both JSON lines, each tagged with its allocator, then the faster.
#
#   bash bench/torch_ref_best.sh [torch_ref.py arguments...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tcmalloc=$(ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1 || true)
if [ -z "$tcmalloc" ]; then
  echo "libtcmalloc_minimal.so.4 not found: apt-get install libtcmalloc-minimal4" >&2
  exit 2
fi
glibc=$(/usr/bin/python3 "$here/torch_ref.py" "$@" | tail -n 1)
tc=$(LD_PRELOAD=$tcmalloc /usr/bin/python3 "$here/torch_ref.py" "$@" | tail -n 1)
/usr/bin/python3 - "$glibc" "$tc" <<'PY'
import json, sys
runs = [dict(json.loads(line), allocator=name) for line, name in zip(sys.argv[1:], ("glibc", "tcmalloc"))]
for r in runs:
    print(json.dumps(r))
print(json.dumps(max(runs, key=lambda r: r["images_per_sec"])))
PY

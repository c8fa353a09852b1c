#!/usr/bin/env python3
"""Writes the summary of a `.ci/gpu run LOGS` as Markdown: which sections passed,
the benchmarks against PyTorch, and the training comparison. Reads only what the
sections left in LOGS, so a section that failed leaves its rows empty."""
import json
import os
import sys


def lines(path):
    """The JSON objects among a file's lines; none if it is missing."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def fmt(v, spec=".0f"):
    return "" if v is None else format(v, spec)


def cell(run, mb_key):
    """images/s and, in brackets, peak GPU memory; empty for a run that failed."""
    ips = run.get("images_per_sec")
    return "" if ips is None else f"{ips:.0f} ({fmt(run.get(mb_key))})"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else ""


def main(logs):
    p = lambda name: os.path.join(logs, name)
    print("## GPU run")
    try:
        gpu = open(p("gpu.csv")).read().splitlines()[1]
        print(f"\nDevice (nvidia-smi: name, driver, memory, compute capability): {gpu}")
    except (OSError, IndexError):
        pass
    print("\n| section | status | seconds |\n|---|---|---|")
    with open(p("status.tsv")) as f:
        for row in list(f)[1:]:
            print("| " + " | ".join(row.rstrip("\n").split("\t")) + " |")

    bench = lines(p("bench.jsonl"))
    ours = {(b["mode"], b["batch"]): b for b in bench if b.get("message_type") == "bench"}
    torch = {(b["mode"], b["batch"], b.get("tf32")): b for b in bench if str(b.get("engine", "")).startswith("pytorch")}
    if bench:
        print("\n### CondenseNet-86 on the GPU: images/s (peak GPU memory, MB)\n")
        print("| run | batch | ours | PyTorch, TF32 off | ours / PyTorch | PyTorch, TF32 on | ours / PyTorch |")
        print("|---|---|---|---|---|---|---|")
        for mode in ("train", "infer"):
            for batch in (64, 256):
                o, off, on = ours.get((mode, batch), {}), torch.get((mode, batch, "off"), {}), torch.get((mode, batch, "on"), {})
                oi, fi, ni = o.get("images_per_sec"), off.get("images_per_sec"), on.get("images_per_sec")
                print(f"| {mode} | {batch} | {cell(o, 'device_mb')} | {cell(off, 'peak_gpu_mb')} | {ratio(oi, fi)} "
                      f"| {cell(on, 'peak_gpu_mb')} | {ratio(oi, ni)} |")
        for batch in (64, 1):
            print(f"| infer, condensed | {batch} | {cell(ours.get(('infer --condensed', batch), {}), 'device_mb')} | | | | |")
        t64 = ours.get(("train", 64), {}).get("images_per_sec")
        if t64:
            print(f"\n300 CIFAR epochs (15M images) at ours' batch-64 speed: {300 * 50000 / t64 / 3600:.2f} hours.")

    for name, title in (("layers-train.json", "training, batch 256"), ("layers-condensed.json", "condensed inference, batch 64")):
        runs = lines(p(name))
        if runs and runs[-1].get("layers"):
            print(f"\n### Where the time goes: {title} (waiting after each operation)\n")
            print("| kind | calls | ms per step | share |\n|---|---|---|---|")
            for r in runs[-1]["layers"][:10]:
                print(f"| {r['kind']} | {r['calls_per_step']} | {r['ms_per_step']:.2f} | {100 * r['share_of_step']:.1f}% |")

    seeds = sorted({int(f.split("-s")[1].split(".")[0]) for f in os.listdir(logs)
                    if f.startswith(("train-ours-s", "train-torch-s")) and f.endswith(".jsonl")})
    if seeds:
        data = (lines(p("train-data.json")) or [{}])[-1].get("data", "the same data")
        print(f"\n### Training comparison: CondenseNet-86 on {data}, same schedule, on the GPU\n")
        print("| seed | epochs | ours: test top-1 | condensed | seconds | PyTorch: test top-1 | seconds |")
        print("|---|---|---|---|---|---|---|")
        ours_top1, torch_top1 = [], []
        for s in seeds:
            o = lines(p(f"train-ours-s{s}.jsonl"))
            t = (lines(p(f"train-torch-s{s}.jsonl")) or [{}])[-1]
            try:
                r = json.load(open(p(f"verify-report-s{s}.json")))
                cond = 1 - r["condensed"]["top1_error"]
            except (OSError, ValueError, KeyError):
                cond = None
            last = o[-1] if o else {}
            if last.get("test_top1") is not None:
                ours_top1.append(last["test_top1"])
            if t.get("final_test_top1") is not None:
                torch_top1.append(t["final_test_top1"])
            print(f"| {s} | {fmt(last.get('epoch'), 'd')} | {fmt(last.get('test_top1'), '.4f')} | {fmt(cond, '.4f')} "
                  f"| {sum(m.get('seconds', 0) for m in o):.1f} | {fmt(t.get('final_test_top1'), '.4f')} "
                  f"| {fmt(t.get('seconds'), '.1f')} |")
        for name, v in (("ours", ours_top1), ("PyTorch", torch_top1)):
            if v:
                print(f"\n{name}: mean test top-1 {sum(v) / len(v):.4f}, from {min(v):.4f} to {max(v):.4f} ({len(v)} seeds)", end="")
        print()
    ex = lines(p("examples.log"))
    if ex:
        e = ex[-1]
        print(f"\nONNX Runtime {e['onnxruntime']} on the export: top-1 error {e['ort_top1_error']:.4f} "
              f"on {e['images']} images, ours {e['ours_top1_error']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])

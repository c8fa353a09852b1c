#!/usr/bin/env python3
"""Times CondenseNet in PyTorch on random data, for speed comparisons with
`pipeline bench`: training steps (forward, backward, SGD update) or
inference passes (running BatchNorm statistics), after a warm-up.

Usage: torch_ref.py [--stages 14-14-14] [--growth 8-16-32] [--batch 64]
    [--steps 5] [--threads 2] [--mode train|infer] [--device cpu|cuda]
    [--tf32 off|on] [--channels-last]

Prints one JSON line: engine, mode, device, batch, threads, sec_per_step,
images_per_sec, peak_rss_mb, tf32, channels_last, and on CUDA gpu and
peak_gpu_mb."""
import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

import condensenet_torch as cn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="14-14-14")
    ap.add_argument("--growth", default="8-16-32")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", default="off", choices=["off", "on"])
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cn.set_tf32(a.tf32 == "on")
    cuda = a.device.startswith("cuda")
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = cn.CondenseNet(cn.parse_dashed(a.stages), cn.parse_dashed(a.growth)).to(a.device, memory_format=fmt)
    net.condense_at(0.5)  # masks as in the second half of training
    x = torch.randn(a.batch, 3, 32, 32, device=a.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,), device=a.device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, nesterov=True)

    def step():
        if a.mode == "train":
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                net(x)

    net.train(a.mode == "train")
    for _ in range(max(2, a.steps // 4)):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / a.steps
    out = {"engine": "pytorch-" + torch.__version__, "mode": a.mode, "device": a.device, "batch": a.batch,
           "threads": a.threads, "sec_per_step": round(sec, 4), "images_per_sec": round(a.batch / sec, 2),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "tf32": a.tf32,
           "channels_last": a.channels_last}
    if cuda:
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() // (1 << 20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

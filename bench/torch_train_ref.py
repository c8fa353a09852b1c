#!/usr/bin/env python3
"""Trains CondenseNet in PyTorch with the recipe `pipeline` uses, for
accuracy comparisons: SGD with Nesterov momentum 0.9, weight decay 1e-4,
batch 64, learning rate 0.1 on a cosine per iteration, padded random crops
and flips, condensing in the first half. On CUDA, TF32 is off, so the
arithmetic is float32 as in `pipeline`.

Usage: torch_train_ref.py --data DIR [--stages 14-14-14] [--growth 8-16-32]
    [--epochs 1] [--train-limit N] [--threads 2] [--seed 0] [--device cpu|cuda]
    [--eval-every 1]

DIR is a folder written by `pipeline run fetch` (work/fetch) or an extracted
CIFAR-10 binary archive. Prints a JSON line per epoch ({"epoch", "train_loss",
"elapsed_s"} and "test_top1" when evaluated) and a last one with
"final_test_top1"."""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

import condensenet_torch as cn


@torch.no_grad()
def evaluate(net, images, labels, device, batch=500):
    net.eval()
    right = 0
    for i in range(0, len(images), batch):
        x = cn.normalise(images[i:i + batch]).to(device)
        right += (net(x).argmax(1).cpu() == torch.from_numpy(labels[i:i + batch])).sum().item()
    net.train()
    return right / len(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--stages", default="14-14-14")
    ap.add_argument("--growth", default="8-16-32")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=50000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cn.set_tf32(False)
    rng = np.random.default_rng(a.seed)
    xtr, ytr = cn.load_split(a.data, "train")
    xtr, ytr = xtr[:a.train_limit], ytr[:a.train_limit]
    xte, yte = cn.load_split(a.data, "test")
    classes = int(max(ytr.max(), yte.max())) + 1
    net = cn.CondenseNet(cn.parse_dashed(a.stages), cn.parse_dashed(a.growth), classes).to(a.device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    steps = len(xtr) // a.batch  # a partial last batch is dropped, as in `pipeline`
    total, it, start = a.epochs * steps, 0, time.time()
    for epoch in range(a.epochs):
        order = rng.permutation(len(xtr))
        loss_sum = 0.0
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            x = cn.augment(xtr[idx], rng).to(a.device)
            y = torch.from_numpy(ytr[idx]).to(a.device)
            net.condense_at(it / total)
            for g in opt.param_groups:
                g["lr"] = cn.cosine_lr(0.1, it, total)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            it += 1
        line = {"epoch": epoch + 1, "train_loss": round(loss_sum / steps, 4), "elapsed_s": round(time.time() - start, 1)}
        if (epoch + 1) % a.eval_every == 0 or epoch + 1 == a.epochs:
            line["test_top1"] = round(evaluate(net, xte, yte, a.device), 4)
        print(json.dumps(line), flush=True)
    print(json.dumps({"final_test_top1": round(evaluate(net, xte, yte, a.device), 4), "stages": a.stages, "growth": a.growth,
                      "epochs": a.epochs, "train_images": len(xtr), "seconds": round(time.time() - start, 1),
                      "engine": "pytorch-" + torch.__version__}))


if __name__ == "__main__":
    main()

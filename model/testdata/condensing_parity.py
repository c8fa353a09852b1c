#!/usr/bin/env python3
"""The PyTorch side of model.TestCondensingParity: replays a run of ours,
written as safetensors, in the official CondenseNet code and prints one JSON
object comparing the two.

Usage: condensing_parity.py OFFICIAL_DIR RUN.safetensors ITERATIONS

RUN holds init.* (our initial tensors, by the official names), per iteration
input.NNN (N, 3, 32, 32), labels.NNN, loss.NNN and lr.NNN, per condensing
step K preK.* (every tensor just before it), postK.*._mask (our masks just
after it) and stepK.iteration, and final.* (every tensor at the end)."""
import copy
import json
import struct
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", (name, v["dtype"])
        s, e = v["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32).copy().reshape(v["shape"]))
    return out


def main(official, run, iterations):
    sys.path.insert(0, official)
    from models.condensenet import CondenseNet
    import layers

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t = read_safetensors(run)
    args = types.SimpleNamespace(stages=[14, 14, 14], growth=[8, 16, 32], data="cifar10", num_classes=10,
                                 bottleneck=4, group_1x1=4, group_3x3=4, condense_factor=4, dropout_rate=0,
                                 group_lasso_lambda=0)

    def with_state(prefix):
        m = CondenseNet(args)
        state = {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}
        missing, unexpected = m.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert all(k.endswith("num_batches_tracked") for k in missing), missing
        return m.train()

    def masks(m):
        return {name: mod._mask for name, mod in m.named_modules() if isinstance(mod, layers.LearnedGroupConv)}

    def forward(m, it, progress):
        layers.LearnedGroupConv.global_progress = progress  # forward(x, 0.0) would leave it as it was
        return m(t["input.%03d" % it], progress)

    steps = []
    k = 0
    while "step%d.iteration" % k in t:
        it = int(t["step%d.iteration" % k].item())
        m = with_state("pre%d." % k)
        with torch.no_grad():
            forward(m, it, it / iterations)
        ours = {name: t["post%d.%s._mask" % (k, name)] for name in masks(m)}
        theirs = masks(m)
        steps.append({"iteration": it, "progress": it / iterations, "layers": len(theirs),
                      "kept": int(sum(v.sum().item() for v in theirs.values())),
                      "differing": int(sum((theirs[n] != ours[n]).sum().item() for n in theirs)),
                      "differing_drifted": 0})
        k += 1

    m = with_state("init.")
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    losses = []
    k = 0
    for it in range(iterations):
        for g in opt.param_groups:
            g["lr"] = t["lr.%03d" % it].item()
        if k < len(steps) and steps[k]["iteration"] == it:
            # What this run, drifted from ours, would choose; then our
            # choice (the same from the same weights, as shown above), so
            # that only float rounding separates the runs.
            probe = copy.deepcopy(m)
            with torch.no_grad():
                forward(probe, it, it / iterations)
            theirs = masks(probe)
            steps[k]["differing_drifted"] = int(sum((theirs[n] != t["post%d.%s._mask" % (k, n)]).sum().item() for n in theirs))
            for name, mod in m.named_modules():
                if isinstance(mod, layers.LearnedGroupConv):
                    for buf in ("_mask", "_count", "_stage"):
                        getattr(mod, buf).copy_(t["post%d.%s.%s" % (k, name, buf)])
            k += 1
        out = forward(m, it, it / iterations)
        loss = F.cross_entropy(out, t["labels.%03d" % it].long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append([t["loss.%03d" % it].item(), loss.item()])

    rel = []
    for name, v in m.state_dict().items():
        ours = t.get("final." + name)
        if ours is None or name.endswith("num_batches_tracked"):
            continue
        scale = max(v.abs().max().item(), 1e-12)
        rel.append(((v.float() - ours).abs().max().item() / scale, name))
    rel.sort()
    print(json.dumps({"torch": torch.__version__, "steps": steps, "losses": losses,
                      "final_median_rel": rel[len(rel) // 2][0], "final_worst_rel": rel[-1][0],
                      "final_worst_tensor": rel[-1][1]}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

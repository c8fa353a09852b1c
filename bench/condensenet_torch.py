"""CondenseNet with learned group convolutions in PyTorch, as condensenet.md
describes it, for the reference scripts beside this file: the same network,
schedule and data as `pipeline` trains, in the framework the project is
measured against. Written for this project; the official implementation is
not needed to run it.

The network: a 3x3 stem to 2*growth[0] channels; dense blocks whose layers
are a learned group convolution (BatchNorm, ReLU, 1x1 convolution whose
weights are masked) to bottleneck*growth channels, then BatchNorm, ReLU and
a 3x3 group convolution to growth channels, concatenated to the input;
2x2 average pooling between blocks; BatchNorm, ReLU, global pooling and a
linear classifier at the end."""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# CIFAR-10's per-channel statistics of images scaled to [0, 1].
MEAN = np.array([0.4914, 0.4824, 0.4467], dtype=np.float32)
STD = np.array([0.2471, 0.2435, 0.2616], dtype=np.float32)


def stage_at(progress, condense):
    """The condensing stage at training progress in [0, 1): C-1 steps in the
    first half, then the optimisation stage C-1."""
    steps = condense - 1
    for i in range(steps):
        if 2 * progress < (i + 1) / steps:
            return i
    return steps


class LearnedGroupConv(nn.Module):
    """BatchNorm, ReLU and a 1x1 convolution whose inputs each output group
    (outputs o with o mod groups = g) drops in condense-1 steps, keeping
    1/condense of them: at each step, the inputs of least summed |W * mask|
    over the group's outputs among those still kept."""

    def __init__(self, cin, cout, groups, condense):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.groups, self.condense = groups, condense
        self.register_buffer("mask", torch.ones(cout, cin, 1, 1))
        self.stage, self.dropped = 0, 0

    def condense_to(self, stage):
        while self.stage < stage:
            self.stage += 1
            self.drop(self.conv.in_channels // self.condense)

    @torch.no_grad()
    def drop(self, delta):
        w = (self.conv.weight * self.mask).abs()[:, :, 0, 0]
        for g in range(self.groups):
            importance = w[g::self.groups].sum(0)
            # Dropped inputs weigh 0 and come first: skip them.
            order = torch.sort(importance, stable=True).indices
            self.mask[g::self.groups, order[self.dropped:self.dropped + delta]] = 0
        self.dropped += delta

    def forward(self, x):
        return F.conv2d(F.relu(self.norm(x)), self.conv.weight * self.mask)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bottleneck, groups, condense):
        super().__init__()
        self.lgc = LearnedGroupConv(cin, bottleneck * growth, groups, condense)
        self.norm = nn.BatchNorm2d(bottleneck * growth)
        self.conv = nn.Conv2d(bottleneck * growth, growth, 3, padding=1, groups=groups, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.norm(self.lgc(x))))], 1)


class CondenseNet(nn.Module):
    def __init__(self, stages=(14, 14, 14), growth=(8, 16, 32), classes=10, bottleneck=4, groups=4, condense=4):
        super().__init__()
        ch = 2 * growth[0]
        layers = [nn.Conv2d(3, ch, 3, padding=1, bias=False)]
        for b, (n, k) in enumerate(zip(stages, growth)):
            if b > 0:
                layers.append(nn.AvgPool2d(2))
            for _ in range(n):
                layers.append(DenseLayer(ch, k, bottleneck, groups, condense))
                ch += k
        self.features = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(ch)
        self.fc = nn.Linear(ch, classes)
        self.condense = condense

    def lgcs(self):
        return [m for m in self.modules() if isinstance(m, LearnedGroupConv)]

    def condense_at(self, progress):
        stage = stage_at(progress, self.condense)
        for m in self.lgcs():
            m.condense_to(stage)

    def forward(self, x):
        x = F.relu(self.norm(self.features(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def parse_dashed(s):
    """'14-14-14' -> (14, 14, 14)."""
    return tuple(int(v) for v in s.split("-"))


def load_split(folder, split):
    """Images (N, 3, 32, 32) uint8 and labels of one split, from a folder
    written by `pipeline run fetch` (train-images.u8 ...) or an extracted
    CIFAR-10 binary archive (data_batch_1.bin ... test_batch.bin)."""
    if os.path.exists(os.path.join(folder, "train-images.u8")):
        x = np.fromfile(os.path.join(folder, split + "-images.u8"), dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.fromfile(os.path.join(folder, split + "-labels.u8"), dtype=np.uint8)
        return x, y.astype(np.int64)
    names = ["data_batch_%d.bin" % i for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    records = np.concatenate([np.fromfile(os.path.join(folder, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def normalise(images_u8):
    x = images_u8.astype(np.float32) / 255
    return torch.from_numpy((x - MEAN[None, :, None, None]) / STD[None, :, None, None])


def augment(images_u8, rng):
    """Random 32x32 crops of the images padded by 4 with zeros (before
    normalisation, as torchvision's RandomCrop pads) and random flips."""
    n = len(images_u8)
    padded = np.zeros((n, 3, 40, 40), dtype=np.uint8)
    padded[:, :, 4:36, 4:36] = images_u8
    dy, dx, flip = rng.integers(0, 9, n), rng.integers(0, 9, n), rng.integers(0, 2, n)
    out = np.empty_like(images_u8)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return normalise(out)


def cosine_lr(peak, iteration, total):
    return 0.5 * peak * (1 + math.cos(math.pi * iteration / total))


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on

#!/usr/bin/env python3
"""Writes a smaller CIFAR-10 binary archive: the first TRAIN records of each
of the five training batches and the first TEST records of the test batch,
under the same member names, so that `pipeline run fetch --data-url` reads
it as CIFAR-10. The GPU machine's train section carries it (a whole archive
is 170 MB; what a run carries is 64 MiB at most).

Usage: cifar_subset.py ARCHIVE OUT TRAIN_PER_BATCH TEST"""
import io
import sys
import tarfile

RECORD = 1 + 3 * 32 * 32  # a label byte, then the image


def main(src, dst, train_per_batch, test):
    keep = {f"data_batch_{i}.bin": train_per_batch for i in range(1, 6)}
    keep["test_batch.bin"] = test
    keep["batches.meta.txt"] = None  # the class names, whole
    found = set()
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz", compresslevel=9) as tout:
        for m in tin:
            base = m.name.rsplit("/", 1)[-1]
            if not m.isfile() or base not in keep:
                continue
            data = tin.extractfile(m).read()
            n = keep[base]
            if n is not None:
                if len(data) < n * RECORD:
                    sys.exit(f"{src}: {base} holds {len(data) // RECORD} records, fewer than {n}")
                data = data[: n * RECORD]
            info = tarfile.TarInfo(m.name)
            info.size, info.mode = len(data), 0o644
            tout.addfile(info, io.BytesIO(data))
            found.add(base)
    if missing := sorted(set(keep) - found):
        sys.exit(f"{src}: not a CIFAR-10 binary archive (missing {', '.join(missing)})")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

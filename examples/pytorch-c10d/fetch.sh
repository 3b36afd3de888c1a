#!/usr/bin/env bash
# Fetches the two PyTorch test files this example runs into pytorch/, at the commits named here, and checks
# them. They are PyTorch's (BSD-3-Clause), not part of this repository: pytorch/ is git-ignored.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p pytorch

# path in pytorch/pytorch, commit, sha256 of the file
FILES=(
    "test/distributed/test_c10d_gloo.py 005a6a0b9ec22601279bf00a3f32e8696eee3b68 f5efa089830e5a847088589b1d75c447b644cbfedb07887af1ed926e6db51b34"
    "test/distributed/test_c10d_common.py 00eb953ba8db83662cebaf661fd666361d5d83fb 82146be5be0da36511865218df33312749df7e16c5880510aa9d9ecde4702c3f"
)

for entry in "${FILES[@]}"; do
    read -r path commit sha256 <<<"$entry"
    target="pytorch/$(basename "$path")"
    if [ -f "$target" ] && echo "$sha256  $target" | sha256sum --check --quiet 2>/dev/null; then
        echo "$target: present"
        continue
    fi
    curl --fail --silent --show-error --location --retry 3 -o "$target.part" \
        "https://raw.githubusercontent.com/pytorch/pytorch/$commit/$path"
    if ! echo "$sha256  $target.part" | sha256sum --check --quiet; then
        echo "$path at $commit does not have the expected sha256; not using it" >&2
        rm -f "$target.part"
        exit 1
    fi
    mv "$target.part" "$target"
    echo "$target: fetched ($commit)"
done

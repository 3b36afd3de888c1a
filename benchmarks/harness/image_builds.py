"""Image sizes and offline build times: what `harness images build DEVICE --offline` costs, per device.

Builds each device's image offline (base image and wheelhouse made on this host; `--rebuild` builds even
when the tag is present, `--fresh-wheelhouse` downloads the wheelhouse again instead of using the cache),
then prints the seconds it took and the image's size. Without `--rebuild`, a present image costs its
cache check only, which is the figure for a second build.

    python benchmarks/harness/image_builds.py cpu cuda --rebuild --fresh-wheelhouse
"""

from __future__ import annotations

import argparse
import shutil
import time

from harness.running.containers import connect_engine
from harness.running.images import build_image, cache_dir, recipe_for


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("devices", nargs="+", choices=["cpu", "cuda"])
    parser.add_argument("--rebuild", action="store_true", help="build even when the tag is present")
    parser.add_argument("--fresh-wheelhouse", action="store_true", help="download the wheelhouse again")
    args = parser.parse_args()
    client = connect_engine(timeout_s=600)
    print(f"{'device':<8}{'tag':<34}{'built':>7}{'seconds':>10}{'size GB':>10}")
    for device in args.devices:
        recipe = recipe_for(device)
        if args.fresh_wheelhouse:
            for cached in (cache_dir() / "wheelhouse").glob(f"{device}-*"):
                shutil.rmtree(cached)
        started = time.monotonic()
        outcome = build_image(client, recipe, offline=True, rebuild=args.rebuild, log=lambda _: None)
        seconds = time.monotonic() - started
        size_gb = client.images.get(outcome.tag).attrs["Size"] / 1e9
        print(f"{device:<8}{outcome.tag:<34}{str(outcome.built):>7}{seconds:>10.1f}{size_gb:>10.2f}")


if __name__ == "__main__":
    main()

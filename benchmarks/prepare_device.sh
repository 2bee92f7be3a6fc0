#!/usr/bin/env bash
# Fill the git-ignored folders that travel to a lent GPU machine with benchmarks/device_check.sh:
#   .device/  weights (microast, adain-cd16x, the VGG-16 metric) and media (style/content pictures, the two clips) from
#             ../shared (or $STYLIZE_SHARED), laid out like ../shared;
#   .whl/     wheels the GPU image lacks, for its Python 3.12: av (this machine's version) and
#             platformdirs (tqdm, filelock, numpy, opencv, onnx(runtime), pytest are in the image).
# Everything carried must stay under the device tool's 64 MiB; the av wheel alone is about 35 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${STYLIZE_SHARED:-../shared}
[ -d "$shared/weights" ] || { echo "prepare_device: no $shared/weights" >&2; exit 1; }

rm -rf .device
mkdir -p .device/weights .device/media/video
for model in microast adain-cd16x vgg16-imagenet; do  # vgg16-imagenet: the style metric of bench --temporal
    cp -r "$shared/weights/$model" .device/weights/
done
mkdir -p .device/media/style .device/media/content  # the pictures the tests and benchmarks name, no more
cp "$shared/media/style/"{starry_night,la_muse,mondrian}.jpg .device/media/style/
cp "$shared/media/content/"{chicago,cornell,golden_gate,sailboat}.jpg .device/media/content/
cp "$shared/media/video/big_buck_bunny_480p_30s.mp4" "$shared/media/video/cutBunny.mp4" .device/media/video/
chmod -R u+w .device  # ../shared is read-only; a later run must be able to replace the copy

mkdir -p .whl
av_version=$(python3 -c 'import importlib.metadata as m; print(m.version("av"))')
rm -f .whl/av-*.whl .whl/platformdirs-*.whl  # one version of each, or the install there stops
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "av==$av_version"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl platformdirs

du -sh .device .whl
total=$(du -sm .device .whl | awk '{s += $1} END {print s}')
if [ "$total" -gt 60 ]; then
    echo "prepare_device: .device + .whl is ${total} MiB; the device tool carries at most 64 MiB with the repo" >&2
    exit 1
fi

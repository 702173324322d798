#!/bin/sh
# Builds the service virtualenv in /opt/venv from a requirements file (the Dockerfile's build stage runs it, and
# bench/image_size.sh runs it to measure the image). What a CPU-only service never loads is left out: pip and
# setuptools, LiteRT's WebGPU accelerator, its NPU vendor plugins and its plugin-compiler tool. (Stripping the
# wheels' shared libraries would save about 17 MB but breaks numpy's patched libraries.)
# Usage: build-venv.sh REQUIREMENTS
set -eu
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q -r "$1"
/opt/venv/bin/pip uninstall -y -q pip setuptools
site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/ai_edge_litert/libLiteRtWebGpuAccelerator.so" "$site/ai_edge_litert/vendors" \
  "$site/ai_edge_litert/tools/apply_plugin_main"

"""Builds the optional C accelerators; everything else is in pyproject.toml.

``llmpulse_collector._otlpscan`` decodes OTLP protobuf bodies in the collector,
``llmpulse._otlpenc`` encodes them in the SDK's exporter, and ``llmpulse._speedups`` holds
fast paths of the exporter's processing (refusal scan, redaction prefilters, reading Chat
Completions; see their sources). All are optional: where they cannot be compiled (no C
compiler, a big-endian host) the install still succeeds and the package uses its pure-Python
code, which gives the same results.
"""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "llmpulse_collector._otlpscan",
            sources=["collector/llmpulse_collector/_otlpscan.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "llmpulse._otlpenc",
            sources=["sdk/llmpulse/_otlpenc.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "llmpulse._speedups",
            sources=["sdk/llmpulse/_speedups.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ]
)

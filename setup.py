"""Builds the collector's optional C accelerator; everything else is in pyproject.toml.

``llmpulse_collector._otlpscan`` decodes OTLP protobuf bodies (see its source). It is
optional: where it cannot be compiled (no C compiler, a big-endian host) the install still
succeeds and the collector uses its pure-Python decoder, which gives the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "llmpulse_collector._otlpscan",
            sources=["collector/llmpulse_collector/_otlpscan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)

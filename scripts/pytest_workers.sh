#!/usr/bin/env bash
# Prints how many pytest processes scripts/test.sh and .ci/run use:
# $CONDCOMP_TEST_WORKERS, else one per core, at most 4 (each holds its own
# TensorFlow).
n="${CONDCOMP_TEST_WORKERS:-$(nproc)}"
[ -n "${CONDCOMP_TEST_WORKERS:-}" ] || [ "$n" -le 4 ] || n=4
echo "$n"

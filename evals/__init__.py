"""Evaluation harness: AIME / MATH / GPQA / GSM8K / arith loaders, metrics, runner and reports."""

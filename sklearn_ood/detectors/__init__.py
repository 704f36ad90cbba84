"""Detectors: arrays in, scores out (higher means more in-distribution)."""

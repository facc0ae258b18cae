"""Shared building blocks: every network in unpaired is assembled from these."""

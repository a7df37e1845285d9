"""Deterministic Campus-like demo data for the district databases."""

"""Synthetic worlds: the data model, its Parquet format and a seeded generator."""

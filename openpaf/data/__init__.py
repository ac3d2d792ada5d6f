"""Datasets, training targets and augmentation."""

"""Embeddings are compared by cosine similarity, so every vector is stored at unit length."""

import numpy as np


def normalised(vectors) -> np.ndarray:
    """The rows of an (n, dim) array scaled to unit length, as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError("embeddings must be an (n, dim) array")
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

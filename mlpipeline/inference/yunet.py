"""YuNet, the small-face finder, run by OpenVINO: the rows OpenCV's FaceDetectorYN gives.

OpenCV's net runs YuNet's int8 graph layer by layer; OpenVINO runs it 1.8x faster in
float32 and 3.2x in bfloat16 (one thread, a 1564 x 1064 tile of a 24 MP photo's
3,000 px decode: 0.13 s in OpenCV, 0.074 s and 0.044 s). What OpenCV does around the
net is done here the same way (OpenCV 4.x, modules/objdetect/src/face_detect.cpp): the
image padded with black to a multiple of 32, fed as BGR values 0-255; per stride (8,
16, 32) a score sqrt(cls × obj) (each clamped to 0-1), a box from the cell's offset and
the log of its size, five landmarks; then non-maximum suppression. Each row is OpenCV's:
x, y, width, height, five landmark (x, y) pairs, score.

The method names are FaceDetectorYN's (``setInputSize``, ``detect``), so the tiling in
:mod:`mlpipeline.inference.mtcnn` runs either detector.
"""

import numpy as np

STRIDES = (8, 16, 32)
#: YuNet's input sides are multiples of this (its largest stride)
DIVISOR = 32


class YuNet:
    def __init__(self, program, score_threshold: float, nms_threshold: float, top_k: int):
        self.program = program  # a compiled.Program of YuNet's ONNX graph, input (1, 3, -1, -1)
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k
        self.size = (0, 0)

    def setInputSize(self, size: tuple[int, int]) -> None:  # noqa: N802 (FaceDetectorYN's name)
        self.size = size

    def detect(self, bgr: np.ndarray) -> tuple[int, np.ndarray | None]:
        """(1, one float32 row per face, or None when there is none), as FaceDetectorYN.detect
        (whose first value says it ran)."""
        height, width = bgr.shape[:2]
        padded_height, padded_width = _padded(height), _padded(width)
        blob = np.zeros((1, 3, padded_height, padded_width), np.float32)
        blob[0, :, :height, :width] = bgr.transpose(2, 0, 1)
        rows = decode(self.program(blob), padded_width, padded_height, self.score_threshold)
        rows = suppress(rows, self.score_threshold, self.nms_threshold, self.top_k)
        return 1, rows if len(rows) else None


def _padded(side: int) -> int:
    return ((side - 1) // DIVISOR + 1) * DIVISOR


def decode(outputs: dict[str, np.ndarray], width: int, height: int, threshold: float) -> np.ndarray:
    """Rows of every cell scoring at least ``threshold``, from YuNet's outputs for an
    input of ``width`` x ``height`` (padded) pixels."""
    found = []
    for stride in STRIDES:
        columns = width // stride
        cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
        score = np.sqrt(cls * obj)
        cells = np.flatnonzero(score >= threshold)
        if not len(cells):
            continue
        row, column = (cells // columns).astype(np.float32), (cells % columns).astype(np.float32)
        box = outputs[f"bbox_{stride}"][0, cells]
        points = outputs[f"kps_{stride}"][0, cells]
        centre_x, centre_y = (column + box[:, 0]) * stride, (row + box[:, 1]) * stride
        box_width, box_height = np.exp(box[:, 2]) * stride, np.exp(box[:, 3]) * stride
        landmarks = np.empty((len(cells), 10), np.float32)
        landmarks[:, 0::2] = (points[:, 0::2] + column[:, None]) * stride
        landmarks[:, 1::2] = (points[:, 1::2] + row[:, None]) * stride
        found.append(np.column_stack([centre_x - box_width / 2, centre_y - box_height / 2,
                                      box_width, box_height, landmarks, score[cells]]))
    return np.concatenate(found).astype(np.float32) if found else np.zeros((0, 15), np.float32)


def suppress(rows: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int) -> np.ndarray:
    """The rows OpenCV's NMSBoxes keeps (its rules and its overlap measure), best first."""
    if len(rows) < 2:
        return rows
    import cv2

    kept = cv2.dnn.NMSBoxes(rows[:, :4].tolist(), rows[:, 14].tolist(), score_threshold, nms_threshold,
                            top_k=top_k)
    return rows[np.asarray(kept, dtype=int).reshape(-1)]

"""Constants of the public TFLite schema (``tensorflow/lite/schema/schema.fbs``)."""

from __future__ import annotations

from typing import Any

import numpy as np

BUILTIN_OPS: dict[int, str] = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 7: "EMBEDDING_LOOKUP", 8: "FLOOR",
    9: "FULLY_CONNECTED", 10: "HASHTABLE_LOOKUP", 11: "L2_NORMALIZATION", 12: "L2_POOL_2D",
    13: "LOCAL_RESPONSE_NORMALIZATION", 14: "LOGISTIC", 15: "LSH_PROJECTION", 16: "LSTM",
    17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE",
    23: "RESIZE_BILINEAR", 24: "RNN", 25: "SOFTMAX", 26: "SPACE_TO_DEPTH", 27: "SVDF",
    28: "TANH", 29: "CONCAT_EMBEDDINGS", 30: "SKIP_GRAM", 31: "CALL", 32: "CUSTOM",
    33: "EMBEDDING_LOOKUP_SPARSE", 34: "PAD", 35: "UNIDIRECTIONAL_SEQUENCE_RNN", 36: "GATHER",
    37: "BATCH_TO_SPACE_ND", 38: "SPACE_TO_BATCH_ND", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB",
    42: "DIV", 43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM", 45: "STRIDED_SLICE",
    46: "BIDIRECTIONAL_SEQUENCE_RNN", 47: "EXP", 48: "TOPK_V2", 49: "SPLIT", 50: "LOG_SOFTMAX",
    51: "DELEGATE", 52: "BIDIRECTIONAL_SEQUENCE_LSTM", 53: "CAST", 54: "PRELU", 55: "MAXIMUM",
    56: "ARG_MAX", 57: "MINIMUM", 58: "LESS", 59: "NEG", 60: "PADV2", 61: "GREATER",
    62: "GREATER_EQUAL", 63: "LESS_EQUAL", 64: "SELECT", 65: "SLICE", 66: "SIN",
    67: "TRANSPOSE_CONV", 68: "SPARSE_TO_DENSE", 69: "TILE", 70: "EXPAND_DIMS", 71: "EQUAL",
    72: "NOT_EQUAL", 73: "LOG", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE", 78: "POW",
    79: "ARG_MIN", 80: "FAKE_QUANT", 81: "REDUCE_PROD", 82: "REDUCE_MAX", 83: "PACK",
    84: "LOGICAL_OR", 85: "ONE_HOT", 86: "LOGICAL_AND", 87: "LOGICAL_NOT", 88: "UNPACK",
    89: "REDUCE_MIN", 90: "FLOOR_DIV", 91: "REDUCE_ANY", 92: "SQUARE", 93: "ZEROS_LIKE",
    94: "FILL", 95: "FLOOR_MOD", 96: "RANGE", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU",
    99: "SQUARED_DIFFERENCE", 100: "MIRROR_PAD", 101: "ABS", 102: "SPLIT_V", 103: "UNIQUE",
    104: "CEIL", 105: "REVERSE_V2", 106: "ADD_N", 107: "GATHER_ND", 108: "COS", 109: "WHERE",
    110: "RANK", 111: "ELU", 112: "REVERSE_SEQUENCE", 113: "MATRIX_DIAG", 114: "QUANTIZE",
    115: "MATRIX_SET_DIAG", 116: "ROUND", 117: "HARD_SWISH", 118: "IF", 119: "WHILE",
    120: "NON_MAX_SUPPRESSION_V4", 121: "NON_MAX_SUPPRESSION_V5", 122: "SCATTER_ND",
    123: "SELECT_V2", 124: "DENSIFY", 125: "SEGMENT_SUM", 126: "BATCH_MATMUL",
}  # fmt: skip

# TensorType -> numpy dtype (None: not representable / not supported here)
TENSOR_TYPES: dict[int, tuple[str, np.dtype | None]] = {
    0: ("FLOAT32", np.dtype("<f4")),
    1: ("FLOAT16", np.dtype("<f2")),
    2: ("INT32", np.dtype("<i4")),
    3: ("UINT8", np.dtype("u1")),
    4: ("INT64", np.dtype("<i8")),
    5: ("STRING", None),
    6: ("BOOL", np.dtype("?")),
    7: ("INT16", np.dtype("<i2")),
    8: ("COMPLEX64", np.dtype("<c8")),
    9: ("INT8", np.dtype("i1")),
    10: ("FLOAT64", np.dtype("<f8")),
}

PADDING = {0: "SAME", 1: "VALID"}
FUSED = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# BuiltinOptions union member -> (table name, [(field name, kind, default), ...]) in schema
# field order. Kinds: b int8, B uint8, i int32, f float32, ? bool, [i int32 vector.
OPTIONS: dict[int, tuple[str, list[tuple[str, str, Any]]]] = {
    1: ("Conv2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("fused_activation_function", "b", 0), ("dilation_w_factor", "i", 1),
        ("dilation_h_factor", "i", 1),
    ]),
    2: ("DepthwiseConv2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("depth_multiplier", "i", 0), ("fused_activation_function", "b", 0),
        ("dilation_w_factor", "i", 1), ("dilation_h_factor", "i", 1),
    ]),
    5: ("Pool2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("filter_width", "i", 0), ("filter_height", "i", 0),
        ("fused_activation_function", "b", 0),
    ]),
    8: ("FullyConnectedOptions", [
        ("fused_activation_function", "b", 0), ("weights_format", "b", 0),
        ("keep_num_dims", "?", False), ("asymmetric_quantize_inputs", "?", False),
    ]),
    9: ("SoftmaxOptions", [("beta", "f", 0.0)]),
    10: ("ConcatenationOptions", [("axis", "i", 0), ("fused_activation_function", "b", 0)]),
    11: ("AddOptions", [("fused_activation_function", "b", 0), ("pot_scale_int16", "?", True)]),
    17: ("ReshapeOptions", [("new_shape", "[i", None)]),
    21: ("MulOptions", [("fused_activation_function", "b", 0)]),
    22: ("PadOptions", []),
    27: ("ReducerOptions", [("keep_dims", "?", False)]),
}  # fmt: skip

SCALAR_FMT = {"b": "<b", "B": "<B", "i": "<i", "f": "<f", "?": "<?"}

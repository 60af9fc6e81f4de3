"""ONNX graph rewrites: the same function in fewer or cheaper nodes.

Generic rewrites (any graph with the pattern; the rest is left alone):

* :func:`subpixel_conv_transpose`: a 4x4/2 ConvTranspose as a 3x3 Conv + DepthToSpace (int8
  quantization needs it: onnxruntime's CPU provider has no int8 ConvTranspose);
* :func:`fold_upsampling_into_convs`: a U-Net decoder's nearest upsampling + concat + 3x3 Conv
  as a ConvTranspose of the low-resolution input plus a Conv of the skip connection.

Model rebuilds (one exported graph each; anything else raises ``ExportError``):

* :func:`lean_generator`: the image generator's tf2onnx graph, channels-first, fewer nodes;
* :func:`lean_step`: the video step model's tf2onnx graph, cheaper advection and decoder.

A rewritten graph ships only through ``trainer.export.export_rewritten``, which checks it
against TensorFlow like any export. Helpers for matching nodes (:func:`attr`,
:func:`prune_unused`, :func:`is_upsampling_conv_transpose`, ...) are public for new rewrites.
"""
from __future__ import annotations

import math

import numpy as np

from trainer.export import ExportError


# ---------------------------------------------------------------------------- node helpers
def attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def prune_unused(graph) -> None:
    """Drop the nodes whose outputs nothing reads (after a rewrite rewired their consumers),
    then the initializers no node reads."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = {name for node in graph.node for name in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def is_upsampling_conv_transpose(node, weights: dict) -> bool:
    from onnx import helper

    if node.op_type != "ConvTranspose" or node.input[1] not in weights \
            or (len(node.input) > 2 and node.input[2] not in weights):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return (attrs.get("kernel_shape") == [4, 4] and attrs.get("strides") == [2, 2]
            and attrs.get("pads") == [1, 1, 1, 1] and attrs.get("group", 1) == 1
            and attrs.get("dilations", [1, 1]) == [1, 1] and not attrs.get("output_padding")
            and not attrs.get("output_shape") and attrs.get("auto_pad", b"NOTSET") == b"NOTSET")


def is_same_3x3_conv(node, weights: dict) -> bool:
    return (node.op_type == "Conv" and node.input[1] in weights
            and (len(node.input) < 3 or node.input[2] in weights)
            and attr(node, "kernel_shape") == [3, 3] and attr(node, "pads") == [1, 1, 1, 1]
            and attr(node, "strides", [1, 1]) == [1, 1] and attr(node, "group", 1) == 1
            and attr(node, "dilations", [1, 1]) == [1, 1]
            and attr(node, "auto_pad", b"NOTSET") == b"NOTSET")


def is_nearest_2x(node, weights: dict) -> bool:
    """Resize of an NCHW tensor by exactly 2 per spatial axis, nearest, pixel (i, j) <- (i // 2,
    j // 2) (asymmetric coordinates with floor, the TensorFlow export's form)."""
    from onnx import numpy_helper

    if node.op_type != "Resize" or len(node.input) < 3 or node.input[2] not in weights \
            or (len(node.input) > 3 and node.input[3]):
        return False
    scales = numpy_helper.to_array(weights[node.input[2]])
    return (scales.tolist() == [1.0, 1.0, 2.0, 2.0] and attr(node, "mode") == b"nearest"
            and attr(node, "coordinate_transformation_mode") == b"asymmetric"
            and attr(node, "nearest_mode", b"round_prefer_floor") == b"floor")


def channels_of(name: str, producer: dict, weights: dict) -> int | None:
    """Channel count of an activation made by a Conv (or an activation of one), else None."""
    node = producer.get(name)
    while node is not None and node.op_type in ("LeakyRelu", "Relu"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Conv" or node.input[1] not in weights:
        return None
    return int(weights[node.input[1]].dims[0])



# ---------------------------------------------------------------------------- generic rewrites
def subpixel_conv_transpose(model):
    """Rewrite every ConvTranspose with 4x4 kernels, stride 2 and padding 1 (the DCGAN
    upsampling layer) as a 3x3 Conv with 4x the output channels + DepthToSpace(2).

    Output pixel (2i + a, 2j + b) of the transposed convolution sums input rows i - 1 .. i + 1
    against kernel rows (3, 1, -) for a = 0 and (-, 2, 0) for a = 1 (columns alike), so each of
    the four output phases is a 3x3 convolution with some taps zero; DepthToSpace (DCR)
    interleaves the phases. Same numbers in float; other ConvTranspose shapes are left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if not is_upsampling_conv_transpose(node, weights):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]])            # (in, out, 4, 4)
        bias = (numpy_helper.to_array(weights[node.input[2]]) if len(node.input) > 2
                else np.zeros(w.shape[1], w.dtype))
        names = [f"{node.name}/subpixel_{x}" for x in ("kernel", "bias", "phases")]
        graph.initializer.extend([numpy_helper.from_array(_subpixel_kernel(w), names[0]),
                                  numpy_helper.from_array(np.tile(bias, 4), names[1])])
        nodes += [helper.make_node("Conv", [node.input[0], names[0], names[1]], [names[2]],
                                   name=names[2] + "_conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                  helper.make_node("DepthToSpace", [names[2]], [node.output[0]],
                                   name=names[2] + "_interleave", blocksize=2, mode="DCR")]
    del graph.node[:]
    graph.node.extend(nodes)
    prune_unused(graph)
    return model


def fold_upsampling_into_convs(model):
    """Rewrite every ``Conv3x3(Concat([Resize2x(low), skip]))`` (a U-Net decoder layer:
    nearest-neighbour upsampling by 2, concatenated with a skip connection, then a 3x3 Conv,
    stride 1, padding 1) so that the upsampling and the upsampled half's convolution are one
    ConvTranspose of ``low``: ``ConvTranspose4x4/2(low) + Conv3x3(skip)``.

    On a nearest-upsampled input, output row 2m reads low rows m - 1 (kernel row 0) and m
    (rows 1 + 2), row 2m + 1 reads rows m (0 + 1) and m + 1 (row 2), columns alike; a 4x4
    transposed convolution with stride 2 and padding 1 makes exactly these sums with kernel
    rows (w2, w1 + w2, w0 + w1, w0). The same function up to float rounding; the upsampled
    half costs 4 x 4 instead of 4 x 9 multiply-adds per low-resolution pixel, and no upsampled
    copy is made. Other Resize / Concat / Conv shapes are left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    replace, drop = {}, set()
    for conv in graph.node:
        concat = producer.get(conv.input[0])
        if not (is_same_3x3_conv(conv, weights) and concat is not None
                and concat.op_type == "Concat" and len(concat.input) == 2
                and attr(concat, "axis") == 1 and len(readers[concat.output[0]]) == 1):
            continue
        resize = producer.get(concat.input[0])
        if resize is None or not is_nearest_2x(resize, weights) \
                or len(readers[resize.output[0]]) != 1:
            continue
        w = numpy_helper.to_array(weights[conv.input[1]])             # (out, up + skip, 3, 3)
        up = channels_of(resize.input[0], producer, weights)
        if up is None or not 0 < up < w.shape[1]:
            continue
        name = conv.name or conv.output[0]
        names = {x: f"{name}/folded_{x}" for x in ("up_kernel", "skip_kernel", "up", "skip")}
        graph.initializer.extend([
            numpy_helper.from_array(_upsampled_conv_transpose_kernel(w[:, :up]),
                                    names["up_kernel"]),
            numpy_helper.from_array(np.ascontiguousarray(w[:, up:]), names["skip_kernel"])])
        replace[id(conv)] = [
            helper.make_node("ConvTranspose", [resize.input[0], names["up_kernel"]],
                             [names["up"]], name=names["up"], kernel_shape=[4, 4],
                             strides=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Conv", [concat.input[1], names["skip_kernel"], *conv.input[2:]],
                             [names["skip"]], name=names["skip"], kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("Add", [names["up"], names["skip"]], [conv.output[0]],
                             name=f"{name}/folded_sum")]
        drop.update({id(concat), id(resize)})
    nodes = []
    for node in graph.node:
        if id(node) not in drop:
            nodes += replace.get(id(node), [node])
    del graph.node[:]
    graph.node.extend(nodes)
    prune_unused(graph)
    return model


def _upsampled_conv_transpose_kernel(w: np.ndarray) -> np.ndarray:
    """(out, in, 3, 3) kernel of a 3x3 Conv on a 2x nearest-upsampled input -> the (in, out, 4,
    4) kernel of the 4x4/2 ConvTranspose (padding 1) on the low-resolution input: kernel row k
    sums the 3x3 rows (2), (1, 2), (0, 1), (0) for k = 0 .. 3, columns alike."""
    taps = ((2,), (1, 2), (0, 1), (0,))
    k = np.zeros((w.shape[1], w.shape[0], 4, 4), w.dtype)
    for ky, rows in enumerate(taps):
        for kx, cols in enumerate(taps):
            k[:, :, ky, kx] = w[:, :, list(rows)][:, :, :, list(cols)].sum((2, 3)).T
    return k


def _subpixel_kernel(w: np.ndarray) -> np.ndarray:
    """(in, out, 4, 4) ConvTranspose kernel -> (4 * out, in, 3, 3) Conv kernel, phase-major."""
    taps = ((3, 1, None), (None, 2, 0))     # kernel row feeding input row i - 1 + r, per phase
    k = np.zeros((2, 2, w.shape[1], w.shape[0], 3, 3), w.dtype)
    for a in (0, 1):
        for b in (0, 1):
            for r, ky in enumerate(taps[a]):
                for c, kx in enumerate(taps[b]):
                    if ky is not None and kx is not None:
                        k[a, b, :, :, r, c] = w[:, :, ky, kx].T
    return k.reshape(4 * w.shape[1], w.shape[0], 3, 3)



# ---------------------------------------------------------------------------- model rebuilds
def lean_generator(model, *, n_classes: int, pixel_norm_eps: float):
    """The generator's tf2onnx graph rebuilt with fewer, cheaper nodes; the same function.

    tf2onnx keeps Keras' layout and layers op for op: a one-hot + concat before the dense layer,
    channels-last activations transposed before the ConvTranspose and the output convolution,
    and six nodes per pixel norm. Rebuilt here, from the same weights:

    * dense: ``z @ W_z + (W_label + b)[label]`` (Gather + Gemm, the gathered rows as the Gemm's
      C term), columns permuted so that the reshape gives channels-first directly (no
      Transpose);
    * pixel norm ``x / sqrt(mean_c x^2 + eps)`` as ``x / sqrt(sum_c x^2 + C eps)`` (ReduceSumSquare,
      Add, Sqrt, Div) with the missing factor sqrt(C) folded into the next layer's weights;
    * the sub-pixel output channels-first: Conv 3x3 to 4 channels, DepthToSpace (DCR, the order
      of TensorFlow's depth_to_space), tanh.

    ``n_classes`` and ``pixel_norm_eps`` are the generator's (trainer.image_model). Raises
    ExportError if ``model`` is not the image generator's tf2onnx graph."""
    from onnx import TensorProto, helper, numpy_helper

    w = _generator_weights(model, n_classes)
    z_dim, g = w["z_dim"], w["g"]
    dense_w, dense_b, convt_w, convt_b = w["dense_w"], w["dense_b"], w["convt_w"], w["convt_b"]
    conv_w, conv_b, slope = w["conv_w"], w["conv_b"], w["slope"]
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    nchw = np.arange(7 * 7 * g).reshape(7, 7, g).transpose(2, 0, 1).ravel()
    # the bias rides on the label rows, which enter the Gemm as its C term (no Add node)
    rows = node("Gather", [const("dense_label_b", dense_w[z_dim:, nchw] + dense_b[nchw]),
                           "label"], "dense_label_rows", axis=0)
    x = node("Gemm", ["z", const("dense_z", dense_w[:z_dim, nchw]), rows], "dense")
    x = node("Reshape", [x, const("nchw_7x7", np.array([-1, g, 7, 7], np.int64))], "h0")

    def act_norm(x, i, channels):
        a = node("LeakyRelu", [x], f"lrelu{i}", alpha=slope)
        s = node("ReduceSumSquare", [a], f"norm{i}_sumsq", axes=[1], keepdims=1)
        s = node("Add", [s, const(f"norm{i}_eps", np.float32(channels * pixel_norm_eps))],
                 f"norm{i}_eps_added")
        return node("Div", [a, node("Sqrt", [s], f"norm{i}_root")], f"norm{i}"), \
            np.float32(math.sqrt(channels))

    x, scale = act_norm(x, 0, g)
    x = node("ConvTranspose", [x, const("convt0_w", convt_w * scale), const("convt0_b", convt_b)],
             "convt0", kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])
    x, scale = act_norm(x, 1, convt_w.shape[1])
    # 14x14 features -> the 4 pixels of each 2x2 block, interleaved
    x = node("Conv", [x, const("out_w", conv_w * scale), const("out_b", conv_b)], "out_pre",
             kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = node("DepthToSpace", [x], "out_interleave", blocksize=2, mode="DCR")
    node("Reshape", [node("Tanh", [x], "out_tanh"),
                     const("image_shape", np.array([-1, 28, 28], np.int64))], "images")
    lean = helper.make_graph(
        nodes, "generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", z_dim]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 28, 28])], inits)
    out = helper.make_model(lean, opset_imports=list(model.opset_import),
                            producer_name="trainer.graph_rewrites.lean_generator")
    out.ir_version = model.ir_version
    return out


def _generator_weights(model, n_classes: int) -> dict:
    """The image generator's weights from its tf2onnx graph (checked to be that graph)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    by_op: dict = {}
    for node in graph.node:
        by_op.setdefault(node.op_type, []).append(node)
    counts = {op: len(by_op.get(op, [])) for op in ("MatMul", "ConvTranspose", "Conv",
                                                    "LeakyRelu", "ReduceMean", "DepthToSpace")}
    if counts != {"MatMul": 1, "ConvTranspose": 1, "Conv": 1, "LeakyRelu": 2, "ReduceMean": 2,
                  "DepthToSpace": 1}:
        raise ExportError(f"lean_generator: not the image generator graph ({counts})")
    matmul = by_op["MatMul"][0]
    bias_add = next(n for n in graph.node if n.op_type == "Add" and matmul.output[0] in n.input)
    dense_w = weights[matmul.input[1]]
    dense_b = weights[next(i for i in bias_add.input if i in weights)]
    convt = by_op["ConvTranspose"][0]
    convt_w, convt_b = weights[convt.input[1]], weights[convt.input[2]]
    conv = by_op["Conv"][0]
    conv_w, conv_b = weights[conv.input[1]], weights[conv.input[2]]
    alpha = {helper.get_attribute_value(a) for n in by_op["LeakyRelu"] for a in n.attribute}
    z_dim, g = dense_w.shape[0] - n_classes, convt_w.shape[0]
    if len(alpha) != 1 or dense_w.shape[1] != 7 * 7 * g \
            or conv_w.shape != (4, convt_w.shape[1], 3, 3) \
            or attr(by_op["DepthToSpace"][0], "mode", b"DCR") != b"DCR" \
            or not is_upsampling_conv_transpose(convt, weights):
        raise ExportError("lean_generator: unexpected generator layers or weights")
    return {"z_dim": z_dim, "g": g, "dense_w": dense_w, "dense_b": dense_b,
            "convt_w": convt_w, "convt_b": convt_b, "conv_w": conv_w, "conv_b": conv_b,
            "slope": alpha.pop()}


def lean_step(model, *, canvas: int, motion_block: int):
    """The step model's tf2onnx graph rebuilt in cheaper nodes; the same function:

    * the advection tail, bit for bit: GatherND with batch_dims=1 on [N, pixels] becomes
      GatherElements on axis 1 (no index Cast + Unsqueeze), and the Reshape + Slice + Squeeze
      at the end one Reshape;
    * the U-Net decoder's three upsample + concat + 3x3 convolutions: the upsampling and the
      upsampled half's convolution become one ConvTranspose of the low-resolution input
      (:func:`fold_upsampling_into_convs`; the same up to float rounding);
    * the per-pixel source index: the block offsets broadcast onto the pixels instead of
      gathered, bit for bit (:func:`_broadcast_block_offsets`).
    ``canvas`` and ``motion_block`` are the step model's (trainer.video.Config). Raises
    ExportError if ``model`` is not the video step model's tf2onnx graph."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    gathers = [n for n in graph.node if n.op_type == "GatherND"]
    node = producer.get(graph.output[0].name)
    chain = []          # Squeeze <- Slice <- Reshape (frame [N, C, C, 1] -> [N, C, C])
    while node is not None and len(chain) < 3:
        chain.append(node)
        node = producer.get(node.input[0])
    if len(gathers) != 1 or [n.op_type for n in chain] != ["Squeeze", "Slice", "Reshape"]:
        raise ExportError("lean_step: not the video step graph")
    gather = gathers[0]
    unsqueeze = producer.get(gather.input[1])
    cast = producer.get(unsqueeze.input[0]) if unsqueeze is not None else None
    if [a.i for a in gather.attribute if a.name == "batch_dims"] != [1] \
            or cast is None or unsqueeze.op_type != "Unsqueeze" or cast.op_type != "Cast":
        raise ExportError("lean_step: unexpected advection gather")
    # GatherND(data [N, P], idx [N, Q, 1], batch_dims=1) == GatherElements(data, idx [N, Q])
    elements = helper.make_node("GatherElements", [gather.input[0], cast.input[0]],
                                [gather.output[0]], name="lean/advect_gather", axis=1)
    graph.initializer.append(numpy_helper.from_array(
        np.array([-1, canvas, canvas], np.int64), "lean/frame_shape"))
    tail = helper.make_node("Reshape", [chain[2].input[0], "lean/frame_shape"],
                            [chain[0].output[0]], name="lean/next_frame")
    swaps = {id(gather): [elements], id(chain[0]): [tail]}
    if motion_block > 1:
        swaps.update(_broadcast_block_offsets(graph, producer, cast.input[0], canvas,
                                              motion_block))
    body = [m for n in graph.node for m in swaps.get(id(n), [n])]
    del graph.node[:]
    graph.node.extend(body)
    prune_unused(graph)
    fold_upsampling_into_convs(model)
    model.producer_name = "trainer.graph_rewrites.lean_step"
    return model


def _broadcast_block_offsets(graph, producer: dict, index: str, c: int, b: int) -> dict:
    """Nodes replacing the advection's per-pixel source index ``shift[block(p)] + base[p]``
    (a Gather of the 576 block offsets onto the 2,304 pixels, then an Add): the block offsets
    reshaped to [N, C/b, 1, C/b, 1] plus the pixel bases as [1, C/b, b, C/b, b], which
    broadcasts to the same raster-order indices without the gather (``c``: canvas, ``b``: the
    motion block)."""
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in graph.initializer}
    add = producer.get(index)
    expand = None
    if add is not None and add.op_type == "Add":
        expand = next((producer[i] for i in add.input if i in producer), None)
        base_name = next((i for i in add.input if i in weights), None)
    if expand is None or expand.op_type != "Gather" or base_name is None \
            or expand.input[1] not in weights \
            or [a.i for a in expand.attribute if a.name == "axis"] != [1]:
        raise ExportError("lean_step: unexpected advection index")
    yy, xx = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    block = numpy_helper.to_array(weights[expand.input[1]])
    base = numpy_helper.to_array(weights[base_name])
    if not (np.array_equal(block.ravel(), (yy // b * (c // b) + xx // b).ravel())
            and base.size == c * c):
        raise ExportError("lean_step: the advection index is not the raster block map")
    graph.initializer.extend([
        numpy_helper.from_array(np.array([-1, c // b, 1, c // b, 1], np.int64),
                                "lean/block_offsets_shape"),
        numpy_helper.from_array(base.reshape(1, c // b, b, c // b, b), "lean/pixel_base"),
        numpy_helper.from_array(np.array([-1, c * c], np.int64), "lean/index_shape")])
    return {id(expand): [helper.make_node("Reshape", [expand.input[0],
                                                      "lean/block_offsets_shape"],
                                          ["lean/block_offsets"], name="lean/block_offsets")],
            id(add): [helper.make_node("Add", ["lean/block_offsets", "lean/pixel_base"],
                                       ["lean/pixel_index"], name="lean/pixel_index"),
                      helper.make_node("Reshape", ["lean/pixel_index", "lean/index_shape"],
                                       [index], name="lean/pixel_index_flat")]}

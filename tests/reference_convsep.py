"""The ConvSep architecture written plainly with Conv2d / ConvTranspose2d, one decoder
branch per source, as the reference papers describe it. Used to check that the batched
model computes the same function."""
import torch
import torch.nn.functional as F


def reference_forward(model, x: torch.Tensor) -> torch.Tensor:
    c = model.config
    z = model._activate(model.conv1(model.prepare_input(x)))
    z = model._activate(model.conv2(z))
    z = F.relu(model.encode_dense(z.flatten(1)))
    outs = []
    for s in range(len(c.sources)):
        h = F.relu(z @ model.decode_weight[s] + model.decode_bias[s])
        h = h.reshape(x.shape[0], c.conv2_filters, c.frames_after_conv2, 1)
        w2 = model.conv2.weight if c.tied else model.deconv2_weight[s][..., None]
        w1 = model.conv1.weight if c.tied else model.deconv1_weight[s][:, :, None, :]
        b2 = None if model.deconv2_bias is None else model.deconv2_bias[s]
        b1 = None if model.deconv1_bias is None else model.deconv1_bias[s]
        h = model._activate(F.conv_transpose2d(h, w2, b2))
        o = F.conv_transpose2d(h, w1, b1)
        if model.source_bias is not None:
            o = o + model.source_bias[s]
        outs.append(F.relu(o))
    return torch.stack(outs, 1)

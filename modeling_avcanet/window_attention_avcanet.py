"""
Swin window attention for training: the fused `scaled_dot_product_attention` forward, with a backward that returns the
gradient of the additive mask (the relative-position bias) as well, and keeps no attention matrix between the two.

PyTorch's fused SDPA kernels on CPU return no gradient for `attn_mask`, and torchvision's unfused computation keeps
every window's scores and probabilities (B * windows x heads x tokens x tokens, ~240 MB per tensor at batch 2 in the
first Swin stage of the default model) alive until the backward pass. `AVCANetWindowAttentionFunction` saves only the
query, key, value and output, as flash attention does, and recomputes the probabilities clip by clip in the backward;
its output is laid out so that the output projection's saved input is the same tensor, not a copy.
"""

import torch
import torch.nn.functional as F

# Elements of one repeated (clips x windows x heads x tokens x tokens) mask or score block computed at once: 2**23
# float32 (32 MiB) bounds the transient memory per call without making the calls too small to run well.
CHUNK_ELEMENTS = 2**23


def clips_per_chunk(num_windows: int, scores_per_window: int) -> int:
    return max(1, CHUNK_ELEMENTS // (num_windows * scores_per_window))


class AVCANetWindowAttentionFunction(torch.autograd.Function):
    """
    `softmax(q k^T / sqrt(d) + mask) v` over windows, `mask` broadcast over the clips.

    query, key, value: (clips * windows, heads, tokens, head_dim), windows clip-major (torchvision's partition order);
    mask: (windows or 1, heads, tokens, tokens), the bias plus the shift mask, the only mask input that needs a
    gradient (the caller adds the constant shift mask to the bias, so autograd sums this gradient into the bias table).
    """

    @staticmethod
    def forward(ctx, query, key, value, mask):
        num_windows = mask.shape[0]
        clips = query.shape[0] // num_windows
        chunk = clips_per_chunk(num_windows, mask[0].numel()) if num_windows > 1 else clips
        # detached: a mask that requires grad sends PyTorch's CPU SDPA to its unfused math path (2.5x slower here)
        attn_mask = mask.detach().to(query.dtype)
        # written token-major, (clips * windows, tokens, heads, head_dim), and returned as its (.., heads, tokens, ..)
        # view: the caller's `transpose(1, 2).reshape(..., channels)` is then a view, and the output projection keeps
        # this tensor for its backward pass, not a second copy of it (`empty_like` of the permuted query did the same
        # by accident of its strides)
        batch_windows, heads, tokens, head_dim = query.shape
        output = query.new_empty(batch_windows, tokens, heads, head_dim).transpose(1, 2)
        for start in range(0, clips, chunk):
            rows = slice(start * num_windows, min(clips, start + chunk) * num_windows)
            # (windows, heads, N, N) -> (chunk * windows, heads, N, N): windows are clip-major
            repeats = (rows.stop - rows.start) // num_windows
            chunk_mask = attn_mask if num_windows == 1 else attn_mask.repeat(repeats, 1, 1, 1)
            output[rows] = F.scaled_dot_product_attention(query[rows], key[rows], value[rows], attn_mask=chunk_mask)
        ctx.save_for_backward(query, key, value, output, mask)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, output, mask = ctx.saved_tensors
        num_windows, heads, tokens, _ = mask.shape
        clips = query.shape[0] // num_windows
        scale = query.shape[-1] ** -0.5
        chunk = clips_per_chunk(num_windows, mask[0].numel())
        grad_output = grad_output.contiguous()
        grad_query, grad_key, grad_value = torch.empty_like(query), torch.empty_like(key), torch.empty_like(value)
        # softmax and its backward in at least float32 (bf16 inputs under autocast), in float64 for float64 inputs
        accumulate = torch.promote_types(query.dtype, torch.float32)
        grad_mask = torch.zeros(mask.shape, dtype=accumulate, device=mask.device)
        float_mask = mask.to(accumulate)
        for start in range(0, clips, chunk):
            stop = min(clips, start + chunk)
            rows = slice(start * num_windows, stop * num_windows)
            q, k, v, out, grad_out = query[rows], key[rows], value[rows], output[rows], grad_output[rows]
            # the forward's probabilities again, (chunk, windows, heads, N, N)
            scores = torch.matmul(q, k.transpose(-2, -1)).to(accumulate).mul_(scale)
            scores = scores.reshape(stop - start, -1, heads, tokens, tokens).add_(float_mask)
            probs = torch.softmax(scores, dim=-1)
            del scores
            probs_low = probs.reshape(-1, heads, tokens, tokens).to(q.dtype)
            grad_value[rows] = torch.matmul(probs_low.transpose(-2, -1), grad_out)
            del probs_low
            # softmax backward: dS = P * (dP - rowsum(dO * O))
            grad_probs = torch.matmul(grad_out, v.transpose(-2, -1)).to(accumulate)
            delta = (grad_out.to(accumulate) * out.to(accumulate)).sum(dim=-1, keepdim=True)
            grad_scores = probs.reshape(-1, heads, tokens, tokens).mul_(grad_probs.sub_(delta))
            del grad_probs
            grad_mask += grad_scores.reshape(stop - start, -1, heads, tokens, tokens).sum(dim=0)
            grad_scores = grad_scores.to(q.dtype)
            grad_query[rows] = torch.matmul(grad_scores, k).mul_(scale)
            grad_key[rows] = torch.matmul(grad_scores.transpose(-2, -1), q).mul_(scale)
        return grad_query, grad_key, grad_value, grad_mask.to(mask.dtype)


def window_attention_with_mask_gradient(query, key, value, bias, region_mask=None):
    """
    Fused window attention whose gradient reaches `bias` (1, heads, N, N); `region_mask` (windows, N, N) is the
    constant shift mask or None. Returns (clips * windows, heads, N, head_dim), like SDPA.
    """
    mask = bias if region_mask is None else bias + region_mask[:, None].to(bias.dtype)  # (windows or 1, heads, N, N)
    return AVCANetWindowAttentionFunction.apply(query, key, value, mask)

"""EP-CE: the emotion-polarity cross-entropy of AV-CANet."""

import torch
import torch.nn.functional as F


def ep_ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_polarity: torch.Tensor,
    polarity_penalty: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """
    Cross-entropy where a sample whose predicted polarity differs from its true polarity costs `1 + lambda` times
    more, `lambda` being the penalty of its *true* polarity (the authors' `PCCE_Loss`, vectorised).

    Args:
        logits: `(batch, num_classes)`.
        labels: `(batch,)` class indices.
        class_polarity: `(num_classes,)` polarity index of every class.
        polarity_penalty: `(num_polarities,)` lambda of every polarity; all zeros gives plain cross-entropy.
        sample_weight: `(batch,)` optional 0/1 weights, e.g. to leave out clips without audio.
        num_items_in_batch: denominator of the sum; Trainer passes the sample count of the whole accumulated
            (and, under DDP, global) batch so that gradient accumulation gives the same gradient as one big batch.
            Defaults to the batch size (a plain mean).
    """
    logits = logits.float()
    class_polarity = class_polarity.to(logits.device)
    polarity_penalty = polarity_penalty.to(device=logits.device, dtype=logits.dtype)
    cross_entropy = F.cross_entropy(logits, labels, reduction="none")
    true_polarity = class_polarity[labels]
    # argmax carries no gradient: the weight steers the optimisation without being optimised itself
    predicted_polarity = class_polarity[logits.detach().argmax(dim=-1)]
    weight = 1.0 + polarity_penalty[true_polarity] * (predicted_polarity != true_polarity)
    if sample_weight is not None:
        weight = weight * sample_weight.to(weight.dtype)
    denominator = labels.shape[0] if num_items_in_batch is None else num_items_in_batch
    return (weight * cross_entropy).sum() / denominator


__all__ = ["ep_ce_loss"]

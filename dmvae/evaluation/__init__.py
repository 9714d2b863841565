from dmvae.evaluation.metrics import binary_scores, default_source_target, evaluate_cross_generation

__all__ = ["binary_scores", "default_source_target", "evaluate_cross_generation"]

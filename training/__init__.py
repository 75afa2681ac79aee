"""stylemix training: data, losses (shared with optimisation) and a model-agnostic loop."""

"""Inference around the model: the rows of Table 2 and the pipeline that runs AIO around the model."""

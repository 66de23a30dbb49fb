"""Neural network building blocks, all causal and stateful."""

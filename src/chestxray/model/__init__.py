"""The classifier: network, loss, training loop, and the saved model with its preprocessing."""

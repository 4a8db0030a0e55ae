"""What the methods share: backbones, the HMR regressor, mean parameters, the prediction."""

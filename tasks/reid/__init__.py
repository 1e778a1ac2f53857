"""Person re-identification (Market-1501, MSMT17): loaders, P x K sampler, BNNeck, losses, CMC/mAP."""

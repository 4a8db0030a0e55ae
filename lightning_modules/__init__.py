"""One subpackage per method (network, losses, targets, module); `common/` for shared parts."""

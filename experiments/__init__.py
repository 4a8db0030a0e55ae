"""Experiments: the YAML files that define them and the runner that trains them.

`experiments/<name>.yaml` is one experiment, composed from the groups under `experiments/base/`
(see `experiments.config`); `python -m experiments` is the command line (`experiments.cli`);
`experiments.train` builds the objects a config names and fits them; `experiments.run_info`
records what each run leaves in its folder.
"""

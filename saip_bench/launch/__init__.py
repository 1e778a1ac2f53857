"""Starting work somewhere else: torchrun process groups (one or many nodes) and Slurm jobs (submitit)."""

# A site whose one partition is the Slurm first on PATH (real Slurm 22.05 or the fakes), as a site
# describes a Slurm cluster: scheduler 'slurm' (sbatch, sacct polling), launcher 'srun'.
site_configuration = {
    'systems': [
        {
            'name': 'batchci',
            'descr': 'the Slurm first on PATH',
            'hostnames': ['.*'],
            'partitions': [
                {
                    'name': 'debug',
                    'descr': 'the default partition',
                    'scheduler': 'slurm',
                    'launcher': 'srun',
                    # --mem: without it a job takes the whole node's memory on real Slurm
                    # (docs/slurm-observed.md fact 2) and the tests could not share the node.
                    'access': ['--partition=debug', '--mem=100M'],
                    'environs': ['plain'],
                    'max_jobs': 4,
                }
            ],
        }
    ],
    'environments': [
        {'name': 'plain', 'cc': 'cc', 'cxx': '', 'ftn': ''},
    ],
    # The log goes to the working directory, not to a new /tmp file per run.
    'logging': [
        {
            'handlers': [
                {'type': 'file', 'name': 'reframe.log', 'level': 'debug', 'format': '%(message)s'}
            ]
        }
    ],
    'general': [
        {'check_search_recursive': False, 'report_junit': None},
    ],
}

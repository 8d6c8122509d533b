# The tests the reframe scenario runs; each job goes through sbatch, srun and sacct.
import reframe as rfm
import reframe.utility.sanity as sn


class _Base(rfm.RunOnlyRegressionTest):
    valid_systems = ['*']
    valid_prog_environs = ['*']
    time_limit = '5m'


@rfm.simple_test
class Hello(_Base):
    executable = 'echo'
    executable_opts = ['hello']

    @sanity_function
    def says_hello(self):
        return sn.assert_found(r'^hello$', self.stdout)


@rfm.simple_test
class Hostnames(_Base):
    # Two tasks: srun runs the command twice; each prints the allocation's nodes.
    num_tasks = 2
    executable = 'scontrol'
    executable_opts = ['show', 'hostnames']

    @sanity_function
    def two_lines_of_nodes(self):
        return sn.assert_eq(sn.count(sn.findall(r'^localhost$', self.stdout)), 2)


@rfm.simple_test
class ExitThree(_Base):
    # The job's exit code as reframe reads it from sacct's ExitCode column.
    executable = 'sh'
    executable_opts = ['-c', '"exit 3"']

    @sanity_function
    def exit_code_is_three(self):
        return sn.assert_eq(self.job.exitcode, 3)


@rfm.simple_test
class WrongOutput(_Base):
    # A failing test: its job succeeds but the sanity check does not find its line.
    executable = 'echo'
    executable_opts = ['something else']

    @sanity_function
    def says_hello(self):
        return sn.assert_found(r'^hello$', self.stdout)


@rfm.simple_test
class Sleeper(_Base):
    # Only in the cancel run (-n Sleeper): ended by an interrupted reframe.
    tags = {'cancel'}
    executable = 'sleep'
    executable_opts = ['600']

    @sanity_function
    def never(self):
        return sn.assert_true(False)


@rfm.simple_test
class Flexible(_Base):
    # num_tasks = 0: reframe counts the partition's usable nodes itself, from `scontrol -a show
    # -o partitions` and `scontrol -a show -o nodes`, and asks for one task on each.
    num_tasks = 0
    num_tasks_per_node = 1
    executable = 'sh'
    executable_opts = ['-c', '"echo tasks=$SLURM_NTASKS nodes=$SLURM_JOB_NUM_NODES"']

    @sanity_function
    def one_task_per_node(self):
        return sn.assert_found(r'^tasks=1 nodes=1$', self.stdout)

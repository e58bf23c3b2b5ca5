/* slurm_mpi_hello: the smallest real MPI job, used by tests/slurm_test.sh to
 * prove that a Slurm batch script starts every rank of an MPI program and that
 * the ranks can talk to each other, before moeplace-demo exists (and as a
 * quick check of a site's MPI + Slurm setup afterwards).
 *
 * Every rank prints one line (their order in the job's output is not defined:
 * the launcher forwards each rank's stdout separately)
 *     slurm_mpi_hello: rank R of N on HOST (SLURM_JOB_ID=ID) sum=S
 * where S is the MPI_Allreduce sum of all ranks (N*(N-1)/2), so a line exists
 * only when the collective completed. Rank 0 then prints
 *     slurm_mpi_hello: OK N ranks
 * Exit status 0 on success, 1 when the sum is wrong. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int rank = 0, size = 0, len = 0;
	char host[MPI_MAX_PROCESSOR_NAME];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Get_processor_name(host, &len);

	long mine = rank, sum = 0;
	MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	const long want = (long)size * (size - 1) / 2;

	const char *job = getenv("SLURM_JOB_ID");
	printf("slurm_mpi_hello: rank %d of %d on %s (SLURM_JOB_ID=%s) sum=%ld\n", rank, size,
	       host, job ? job : "none", sum);
	fflush(stdout);
	if (rank == 0) {
		if (sum == want)
			printf("slurm_mpi_hello: OK %d ranks\n", size);
		else
			fprintf(stderr, "slurm_mpi_hello: allreduce sum %ld, expected %ld\n", sum, want);
	}
	MPI_Finalize();
	return sum == want ? 0 : 1;
}

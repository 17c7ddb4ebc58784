#include <cblas.h>

/// OpenBLAS extensions (declared in its cblas.h; repeated here for other CBLAS headers).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

/// LAPACK (Fortran interface, column-major) as shipped inside OpenBLAS: Cholesky
/// factorization of a symmetric positive definite matrix and the inverse from it.
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void spotrs_(const char *uplo, const int *n, const int *nrhs, const float *a, const int *lda, float *b,
             const int *ldb, int *info);

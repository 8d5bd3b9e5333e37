// Times onnxruntime through its C API, in process, the way runtime-bench times this project:
//   ort_bench LIBONNXRUNTIME MODEL.onnx INPUT_NAME OUTPUT_NAME BATCH MIN_SECONDS THREADS
// The library is opened with dlopen and the API table indexed by position (the wheel ships no headers;
// OrtApi only ever appends members, so these indices hold for every version that accepts API version 20).
// Input and output live in caller buffers bound once, so a run allocates nothing on our side.
// MIN_SECONDS "cold": one run, its first output value printed, exit (benchmarks/cold-start times the process).
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void *Status;
typedef struct {
    const void *const *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} ApiBase;

enum {
    kGetErrorMessage = 2, kCreateEnv = 3, kCreateSession = 7, kRun = 9, kCreateSessionOptions = 10,
    kSetGraphOptimizationLevel = 23, kSetIntraOpNumThreads = 24, kSetInterOpNumThreads = 25,
    kSessionGetOutputTypeInfo = 34, kCreateTensorWithData = 49, kGetTensorMutableData = 51, kCastTypeInfoToTensorInfo = 55,
    kGetDimensionsCount = 61, kGetDimensions = 62, kCreateCpuMemoryInfo = 69,
};

static const void *const *api;

static void check(Status status, const char *what) {
    if (!status) return;
    const char *(*message)(Status) = (const char *(*)(Status))api[kGetErrorMessage];
    fprintf(stderr, "ort_bench: %s: %s\n", what, message(status));
    exit(1);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: ort_bench LIB MODEL INPUT OUTPUT BATCH MIN_SECONDS THREADS [DIM...]\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "ort_bench: %s\n", dlerror()); return 1; }
    const ApiBase *(*getBase)(void) = (const ApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
    api = getBase()->GetApi(20);
    if (!api) { fprintf(stderr, "ort_bench: API version 20 not supported\n"); return 1; }
    const char *inputName = argv[3], *outputName = argv[4];
    long batch = atol(argv[5]);
    double minSeconds = atof(argv[6]);
    int threads = atoi(argv[7]);

    void *env, *options, *session, *memory;
    check(((Status(*)(int, const char *, void **))api[kCreateEnv])(3, "bench", &env), "CreateEnv");
    check(((Status(*)(void **))api[kCreateSessionOptions])(&options), "CreateSessionOptions");
    check(((Status(*)(void *, int))api[kSetIntraOpNumThreads])(options, threads), "SetIntraOpNumThreads");
    check(((Status(*)(void *, int))api[kSetInterOpNumThreads])(options, 1), "SetInterOpNumThreads");
    check(((Status(*)(void *, int))api[kSetGraphOptimizationLevel])(options, 99), "SetGraphOptimizationLevel");
    check(((Status(*)(void *, const char *, void *, void **))api[kCreateSession])(env, argv[2], options, &session), "CreateSession");
    check(((Status(*)(int, int, void **))api[kCreateCpuMemoryInfo])(0, 0, &memory), "CreateCpuMemoryInfo");

    // Input shape: the remaining arguments, with the batch dimension first.
    int64_t inShape[8];
    size_t inRank = (size_t)(argc - 8) + 1;
    inShape[0] = batch;
    size_t inCount = (size_t)batch;
    for (int i = 8; i < argc; i++) { inShape[i - 7] = atol(argv[i]); inCount *= (size_t)inShape[i - 7]; }
    float *input = malloc(inCount * sizeof(float));
    for (size_t i = 0; i < inCount; i++) input[i] = (float)rand() / (float)RAND_MAX;

    // Output shape from the model, with symbolic dimensions resolved by a first run into a fresh value.
    void *inValue, *outValue = NULL;
    check(((Status(*)(void *, void *, size_t, const int64_t *, size_t, int, void **))api[kCreateTensorWithData])(
              memory, input, inCount * sizeof(float), inShape, inRank, 1, &inValue), "CreateTensor(input)");
    typedef Status (*RunFn)(void *, const void *, const char *const *, const void *const *, size_t, const char *const *,
                            size_t, void **);
    RunFn run = (RunFn)api[kRun];
    check(run(session, NULL, &inputName, (const void *const *)&inValue, 1, &outputName, 1, &outValue), "Run");
    if (strcmp(argv[6], "cold") == 0) {
        float *result = NULL;
        check(((Status(*)(void *, void **))api[kGetTensorMutableData])(outValue, (void **)&result), "GetTensorMutableData");
        printf("Prediction: %.2f\n", result[0]);
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        void *fresh = NULL;
        check(run(session, NULL, &inputName, (const void *const *)&inValue, 1, &outputName, 1, &fresh), "Run");
        outValue = fresh;  // warm-up; values are leaked on purpose (a handful, never in the timed loop)
    }
    size_t capacity = 200000, count = 0;
    double *samples = malloc(capacity * sizeof(double));
    double start = now_ms();
    while (count < 10 || now_ms() - start < minSeconds * 1e3) {
        double t0 = now_ms();
        // Pre-allocated output value: onnxruntime writes into it, nothing is allocated per run by the caller.
        check(run(session, NULL, &inputName, (const void *const *)&inValue, 1, &outputName, 1, &outValue), "Run");
        samples[count++] = now_ms() - t0;
        if (count == capacity) break;
    }
    qsort(samples, count, sizeof(double), compare);
#define PCT(q) (samples[(size_t)((q) / 100.0 * (count - 1))])
    double mean = 0;
    for (size_t i = 0; i < count; i++) mean += samples[i];
    mean /= count;
    printf("{\"runtime\": \"onnxruntime %s\", \"batch\": %ld, \"runs\": %zu, \"p50_ms\": %.6f, \"p90_ms\": %.6f, "
           "\"p99_ms\": %.6f, \"min_ms\": %.6f, \"mean_ms\": %.6f, \"samples_per_s\": %.3f}\n",
           getBase()->GetVersionString(), batch, count, PCT(50), PCT(90), PCT(99), samples[0], mean,
           batch / (PCT(50) / 1e3));
    return 0;
}

// Classifies one CIFAR image with an exported model through the ONNX
// Runtime C API, and prints the top class as the other examples do.
//
//   cc -I ORT_INCLUDE -o classify examples/c/classify.c -lonnxruntime
//   ./classify model.onnx image.u8
//
// The model's metadata says how to prepare the input (input_layout): raw
// RGB in [0, 1] for a model exported with --include-preprocessing, else
// normalised with its normalization_mean and normalization_std.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <onnxruntime_c_api.h>

static const OrtApi *ort;

// check aborts with ONNX Runtime's message if status is an error.
static void check(OrtStatus *status) {
  if (status != NULL) {
    fprintf(stderr, "onnxruntime: %s\n", ort->GetErrorMessage(status));
    ort->ReleaseStatus(status);
    exit(1);
  }
}

// meta returns the model's custom metadata value for key; free it with
// the allocator. A model this program exported has every key used here.
static char *meta(OrtSession *session, OrtAllocator *alloc, const char *key) {
  OrtModelMetadata *md;
  check(ort->SessionGetModelMetadata(session, &md));
  char *value = NULL;
  check(ort->ModelMetadataLookupCustomMetadataMap(md, alloc, key, &value));
  ort->ReleaseModelMetadata(md);
  if (value == NULL) {
    fprintf(stderr, "the model has no %s in its metadata: was it exported by pipeline?\n", key);
    exit(1);
  }
  return value;
}

// parse3 reads "[0.4914 0.4824 0.4467]".
static void parse3(const char *s, float v[3]) {
  if (sscanf(s, "[%f %f %f]", &v[0], &v[1], &v[2]) != 3) {
    fprintf(stderr, "cannot read three numbers from %s\n", s);
    exit(1);
  }
}

// class_name copies the k-th string of a JSON array of plain strings,
// ["airplane","automobile",...], into out.
static void class_name(const char *json, size_t k, char *out, size_t n) {
  const char *p = json;
  for (size_t i = 0; i <= k; i++) {
    p = strchr(p, '"');
    const char *end = p ? strchr(p + 1, '"') : NULL;
    if (end == NULL) {
      snprintf(out, n, "?");
      return;
    }
    if (i == k) {
      snprintf(out, n, "%.*s", (int)(end - p - 1), p + 1);
      return;
    }
    p = end + 1;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s model.onnx image.u8\n", argv[0]);
    return 2;
  }
  // 3072 bytes, channel by channel, as CIFAR stores an image.
  unsigned char img[3072];
  FILE *f = fopen(argv[2], "rb");
  if (f == NULL || fread(img, 1, sizeof img, f) != sizeof img) {
    fprintf(stderr, "%s: want a 3072-byte CIFAR image\n", argv[2]);
    return 1;
  }
  fclose(f);

  ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv *env;
  check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "classify", &env));
  OrtSessionOptions *opts;
  check(ort->CreateSessionOptions(&opts));
  OrtSession *session;
  check(ort->CreateSession(env, argv[1], opts, &session));
  OrtAllocator *alloc;
  check(ort->GetAllocatorWithDefaultOptions(&alloc));

  char *layout = meta(session, alloc, "input_layout");
  int raw = strstr(layout, "raw") != NULL;
  float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
  if (!raw) {
    char *m = meta(session, alloc, "normalization_mean"), *s = meta(session, alloc, "normalization_std");
    parse3(m, mean);
    parse3(s, std);
    check(ort->AllocatorFree(alloc, m));
    check(ort->AllocatorFree(alloc, s));
  }
  check(ort->AllocatorFree(alloc, layout));
  float x[3072];
  for (int i = 0; i < 3072; i++) x[i] = (img[i] / 255.0f - mean[i / 1024]) / std[i / 1024];

  OrtMemoryInfo *mem;
  check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem));
  const int64_t shape[4] = {1, 3, 32, 32};
  OrtValue *input = NULL;
  check(ort->CreateTensorWithDataAsOrtValue(mem, x, sizeof x, shape, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input));
  const char *in_names[] = {"input"}, *out_names[] = {"logits"};
  OrtValue *output = NULL;
  check(ort->Run(session, NULL, in_names, (const OrtValue *const *)&input, 1, out_names, 1, &output));

  float *logits;
  check(ort->GetTensorMutableData(output, (void **)&logits));
  OrtTensorTypeAndShapeInfo *info;
  check(ort->GetTensorTypeAndShape(output, &info));
  size_t n;
  check(ort->GetTensorShapeElementCount(info, &n));
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  char *classes = meta(session, alloc, "classes"), name[128];
  class_name(classes, best, name, sizeof name);
  printf("%s (class %zu, logit %.4f)\n", name, best, logits[best]);

  check(ort->AllocatorFree(alloc, classes));
  ort->ReleaseTensorTypeAndShapeInfo(info);
  ort->ReleaseValue(output);
  ort->ReleaseValue(input);
  ort->ReleaseMemoryInfo(mem);
  ort->ReleaseSession(session);
  ort->ReleaseSessionOptions(opts);
  ort->ReleaseEnv(env);
  return 0;
}

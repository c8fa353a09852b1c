// Classifies one CIFAR image with an exported model through the ONNX
// Runtime C API, and prints the index of the top class.
//
//   cc -o classify examples/c/classify.c -lonnxruntime
//   ./classify model.onnx image.u8
//
// The normalisation below is the one the exporter records in the model's
// metadata (normalization_mean and normalization_std); read it from there
// if your model was trained on other data.
#include <stdio.h>
#include <stdlib.h>
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
  const float mean[3] = {0.4914f, 0.4824f, 0.4467f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
  float x[3072];
  for (int i = 0; i < 3072; i++) x[i] = (img[i] / 255.0f - mean[i / 1024]) / std[i / 1024];

  ort = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv *env;
  check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "classify", &env));
  OrtSessionOptions *opts;
  check(ort->CreateSessionOptions(&opts));
  OrtSession *session;
  check(ort->CreateSession(env, argv[1], opts, &session));

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
  printf("class %zu (logit %.4f)\n", best, logits[best]);

  ort->ReleaseTensorTypeAndShapeInfo(info);
  ort->ReleaseValue(output);
  ort->ReleaseValue(input);
  ort->ReleaseMemoryInfo(mem);
  ort->ReleaseSession(session);
  ort->ReleaseSessionOptions(opts);
  ort->ReleaseEnv(env);
  return 0;
}

package org.condcomp.demo;

import java.nio.ByteBuffer;

/**
 * Runs a CondComp .tflite model (custom ops CondCompGatedDense / CondCompGatedConv2D) with the
 * LiteRT / TensorFlow Lite runtime of the app's AAR. The ops are compiled into libcondcomp_jni.so
 * and registered through the TFLite C API (see src/main/cpp/condcomp_jni.c).
 *
 * <p>Plain Java (no Android classes), one input and one output, float32. Not thread-safe: use one
 * instance per thread.
 */
public final class CondCompInterpreter implements AutoCloseable {
  static {
    // libcondcomp_jni.so links to libtensorflowlite_jni.so (from the AAR); loading the
    // runtime first also works on old Android linkers.
    System.loadLibrary("tensorflowlite_jni");
    System.loadLibrary("condcomp_jni");
  }

  private long handle;

  /**
   * @param model the .tflite bytes in a direct ByteBuffer (copied; may be released afterwards)
   * @param numThreads threads for the custom ops and XNNPACK
   */
  public CondCompInterpreter(ByteBuffer model, int numThreads) {
    if (model == null || !model.isDirect()) {
      throw new IllegalArgumentException("model must be a direct ByteBuffer");
    }
    handle = nativeCreate(model, numThreads);
  }

  /** Shape of input 0 as the model declares it (batch first). */
  public int[] inputShape() {
    return nativeInputShape(checkedHandle());
  }

  /** Shape of output 0 after the last run. */
  public int[] outputShape() {
    return nativeOutputShape(checkedHandle());
  }

  /**
   * Runs the model.
   *
   * @param input row-major float32 values of the input
   * @param shape the input's shape (batch first); the interpreter is resized when it changes
   * @return row-major values of output 0
   */
  public float[] run(float[] input, int[] shape) {
    return nativeRun(checkedHandle(), input, shape);
  }

  /** Which kernel code path the custom ops use on this CPU, e.g. "aarch64 neon". */
  public static String kernelIsa() {
    return nativeKernelIsa();
  }

  @Override
  public void close() {
    if (handle != 0) {
      nativeClose(handle);
      handle = 0;
    }
  }

  private long checkedHandle() {
    if (handle == 0) {
      throw new IllegalStateException("interpreter is closed");
    }
    return handle;
  }

  private static native long nativeCreate(ByteBuffer model, int numThreads);

  private static native int[] nativeInputShape(long handle);

  private static native int[] nativeOutputShape(long handle);

  private static native float[] nativeRun(long handle, float[] input, int[] shape);

  private static native String nativeKernelIsa();

  private static native void nativeClose(long handle);
}

package org.condcomp.demo;

import android.app.Activity;
import android.os.Bundle;
import android.os.SystemClock;
import android.widget.TextView;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;

/** Loads assets/model.tflite, runs it on a random batch of one and shows the output and timing. */
public class MainActivity extends Activity {
  private static final int THREADS = 2;
  private static final int RUNS = 50;

  @Override
  protected void onCreate(Bundle savedInstanceState) {
    super.onCreate(savedInstanceState);
    TextView view = new TextView(this);
    view.setText("running model.tflite ...");
    setContentView(view);
    new Thread(() -> {
      String text;
      try {
        text = runModel();
      } catch (Exception e) {
        text = "failed: " + e;
      }
      final String shown = text;
      runOnUiThread(() -> view.setText(shown));
    }).start();
  }

  private String runModel() throws IOException {
    ByteBuffer model = readAsset("model.tflite");
    try (CondCompInterpreter interpreter = new CondCompInterpreter(model, THREADS)) {
      int[] shape = interpreter.inputShape();
      shape[0] = 1; // batch of one
      int n = 1;
      for (int d : shape) {
        n *= d;
      }
      float[] input = new float[n];
      Random random = new Random(0);
      for (int i = 0; i < n; ++i) {
        input[i] = (float) random.nextGaussian();
      }
      float[] output = interpreter.run(input, shape); // warm-up (allocates, starts threads)
      long start = SystemClock.elapsedRealtimeNanos();
      for (int r = 0; r < RUNS; ++r) {
        output = interpreter.run(input, shape);
      }
      double ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6 / RUNS;
      return String.format(
          "kernels: %s%ninput %s -> output %s%nmean latency %.3f ms (%d threads, %d runs)%n"
              + "first outputs: %s",
          CondCompInterpreter.kernelIsa(),
          Arrays.toString(shape),
          Arrays.toString(interpreter.outputShape()),
          ms,
          THREADS,
          RUNS,
          Arrays.toString(Arrays.copyOf(output, Math.min(10, output.length))));
    }
  }

  private ByteBuffer readAsset(String name) throws IOException {
    try (InputStream in = getAssets().open(name)) {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      byte[] chunk = new byte[1 << 16];
      for (int r; (r = in.read(chunk)) > 0; ) {
        bytes.write(chunk, 0, r);
      }
      byte[] data = bytes.toByteArray();
      ByteBuffer buffer = ByteBuffer.allocateDirect(data.length).order(ByteOrder.nativeOrder());
      buffer.put(data).rewind();
      return buffer;
    }
  }
}

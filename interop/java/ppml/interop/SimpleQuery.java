package ppml.interop;

import static org.apache.spark.sql.functions.col;

import org.apache.spark.sql.DataFrameReader;
import org.apache.spark.sql.DataFrameWriter;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * BigDL's SimpleQuerySparkExample query (developers aged 20 to 40) as a plain
 * Spark application, for the interop tests: BigDL PPML's own jar is not
 * served here (see docs/compatibility.md), so this program drives Spark and
 * parquet-mr directly with the Parquet modular encryption settings BigDL's
 * EncryptedDataFrameReader/Writer use for aes_gcm_v1 / aes_gcm_ctr_v1.
 *
 * <p>The crypto factory, the mock KMS class and the key list come from the
 * Hadoop configuration (spark.hadoop.parquet.* in the properties file the
 * test writes, never the command line); this program adds the per-write
 * options BigDL adds: every column under "key1", the footer under
 * "footerKey", and the algorithm.
 *
 * <p>Usage: SimpleQuery IN_FORMAT IN_PATH OUT_FORMAT OUT_PATH [ALGORITHM],
 * formats "csv" (plaintext, with header) or "parquet-modular".
 */
public final class SimpleQuery {
  public static void main(String[] args) {
    if (args.length < 4) {
      System.err.println("usage: SimpleQuery IN_FORMAT IN_PATH OUT_FORMAT OUT_PATH [AES_GCM_V1|AES_GCM_CTR_V1]");
      System.exit(2);
    }
    String inFormat = args[0], in = args[1], outFormat = args[2], out = args[3];
    String algorithm = args.length > 4 ? args[4] : "AES_GCM_V1";
    SparkSession spark = SparkSession.builder().appName("ppml-interop-simple-query").getOrCreate();
    try {
      DataFrameReader reader = spark.read();
      Dataset<Row> df;
      if (inFormat.equals("csv")) {
        df = reader.option("header", "true").option("inferSchema", "true").csv(in);
      } else if (inFormat.equals("parquet-modular")) {
        df = reader.parquet(in);
      } else {
        throw new IllegalArgumentException("input format " + inFormat + ": want csv or parquet-modular");
      }
      Dataset<Row> developers =
          df.filter(col("job").equalTo("Developer").and(col("age").between(20, 40)));
      System.out.println("ppml-interop: developers=" + developers.count());
      DataFrameWriter<Row> writer = developers.write().mode("overwrite");
      if (outFormat.equals("csv")) {
        writer.option("header", "true").csv(out);
      } else if (outFormat.equals("parquet-modular")) {
        writer
            .option("parquet.encryption.column.keys", "key1: " + String.join(",", developers.columns()))
            .option("parquet.encryption.footer.key", "footerKey")
            .option("parquet.encryption.algorithm", algorithm)
            .parquet(out);
      } else {
        throw new IllegalArgumentException("output format " + outFormat + ": want csv or parquet-modular");
      }
    } finally {
      spark.stop();
    }
  }
}

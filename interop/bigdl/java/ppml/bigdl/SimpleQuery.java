package ppml.bigdl;

import com.intel.analytics.bigdl.ppml.PPMLContext;
import com.intel.analytics.bigdl.ppml.crypto.AES_CBC_PKCS5PADDING$;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * BigDL's SimpleQuerySparkExample through BigDL's own PPMLContext, for
 * interop/bigdl_test.go: reads the AES/CBC/PKCS5Padding CSV dataset IN_DIR
 * with EncryptedDataFrameReader, keeps the developers aged 20 to 40, and
 * writes them with EncryptedDataFrameWriter (CryptoCodec, one data key,
 * .meta) to OUT_DIR, under the primary key "defaultKey".
 *
 * <pre>spark-submit --properties-file F --class ppml.bigdl.SimpleQuery JAR IN_DIR OUT_DIR</pre>
 *
 * The upstream example takes the KMS's API key on its command line
 * (EncryptIOArguments -k) and calls PPMLContext.initPPMLContext(appName, args),
 * which starts dllib's engine (NNContext.initNNContext, Engine.init), whose
 * first step loads BigDL-core's native MKL library (MKL.setNumThreads), not
 * built here. This driver uses PPMLContext.initPPMLContext(sparkSession),
 * BigDL's entry for an existing session (the properties file sets
 * spark.hadoop.io.compression.codecs to BigDL's CryptoCodec, as that entry
 * requires): it reads the KMS settings (spark.bigdl.primaryKey.defaultKey.*)
 * from the Spark configuration, so the key stays in the 0600 properties
 * file, and does not start the engine. The query is the example's.
 */
public final class SimpleQuery {
    public static void main(String[] args) {
        PPMLContext sc = PPMLContext.initPPMLContext(SparkSession.builder().appName("SimpleQuery").getOrCreate());
        Dataset<Row> df = sc.read(AES_CBC_PKCS5PADDING$.MODULE$, "defaultKey").option("header", "true").csv(args[0]);
        Dataset<Row> developers = df.filter(df.col("job").equalTo("Developer").and(df.col("age").between(20, 40))).toDF();
        System.out.println("ppml-bigdl: developers=" + developers.count());
        sc.write(developers, AES_CBC_PKCS5PADDING$.MODULE$, "defaultKey").mode("overwrite").option("header", true).csv(args[1]);
    }
}

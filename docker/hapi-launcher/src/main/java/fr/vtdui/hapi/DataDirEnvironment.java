package fr.vtdui.hapi;

import java.nio.file.Path;
import java.util.Map;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.env.EnvironmentPostProcessor;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * Turns {@code --vtdui.data-dir=DIR} into an H2 database on file ({@code DIR/h2/hapi.mv.db}).
 *
 * <p>Without it the server uses the in-memory database of {@code application.yaml}, which is what tests want: every
 * start is empty. An explicit {@code spring.datasource.url} always wins.
 */
public class DataDirEnvironment implements EnvironmentPostProcessor {

	@Override
	public void postProcessEnvironment(ConfigurableEnvironment env, SpringApplication application) {
		String dir = env.getProperty("vtdui.data-dir", "");
		if (dir.isBlank()) {
			return;
		}
		Path db = Path.of(dir).toAbsolutePath().resolve("h2").resolve("hapi");
		// DB_CLOSE_ON_EXIT=FALSE: Spring closes the pool on shutdown; H2's own hook must not close it first.
		// TRACE_LEVEL_FILE=0: no hapi.trace.db; H2 errors still reach the application log as exceptions.
		String url = "jdbc:h2:file:" + db + ";DB_CLOSE_ON_EXIT=FALSE;TRACE_LEVEL_FILE=0";
		// Lowest precedence: application.yaml reads it through a placeholder, so that an explicit
		// spring.datasource.url (command line, environment) still overrides it.
		env.getPropertySources().addLast(new MapPropertySource("vtdui-data-dir", Map.of("vtdui.h2-url", url)));
	}
}
